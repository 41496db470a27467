"""The chat template as Ollama needs it: a Go text/template equivalent to the model's Jinja template,
and the Modelfile around the GGUF.

Jinja and Go templates cannot be translated in general, so this module recognises the family
instead: ChatML (SmolLM2, Qwen2.5 and every Loom run), with or without a default system prompt that
the template inserts when a conversation has none. It renders probe conversations through the
model's own template and checks each against a ChatML renderer; only a template that matches on
all of them gets a Go translation. Anything else is refused with the reason, never exported with a
template that would talk gibberish or never stop.

The Go template mirrors Ollama's conventions: `.Messages` with `.Role` and `.Content`; a final
assistant message is a prefill (continued, so its end-of-turn is not written); otherwise the
assistant header follows the last message, as `add_generation_prompt=True` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from loom.errors import InputError
from loom.tokenizer.chat import IM_END, IM_START

# Probe conversations: what a template must render identically for the export to be trusted (also
# the template-identity test set). "prefill" ends with an assistant turn to be continued.
PROBES: list[tuple[str, list[dict], str]] = [
    ("system + multi-turn", [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3 + 3?"}], "generate"),
    ("chinese", [
        {"role": "system", "content": "你是客服助手，请用中文回答。"},
        {"role": "user", "content": "我的订单什么时候发货？"},
        {"role": "assistant", "content": "一般在付款后 48 小时内发货。"},
        {"role": "user", "content": "可以改地址吗？"}], "generate"),
    ("no system", [{"role": "user", "content": "Say hello."}], "generate"),
    ("empty system", [{"role": "system", "content": ""}, {"role": "user", "content": "Hi"}], "generate"),
    ("assistant prefill", [
        {"role": "user", "content": "Write a haiku about rain."},
        {"role": "assistant", "content": "Soft rain on the roof"}], "prefill"),
    ("multi-line content", [
        {"role": "user", "content": "Line one\nline two\n\n  indented: {braces} and \"quotes\""}], "generate"),
]


@dataclass
class ChatFormat:
    family: str  # "chatml"
    default_system: str | None  # inserted when a conversation has no system message
    end_of_turn: str  # the string a turn ends with (Ollama's stop parameter)


def render_hf(tokenizer, messages: list[dict], mode: str, template: str | None = None) -> str:
    """The Jinja rendering (transformers' apply_chat_template) of a probe."""
    kwargs = {"continue_final_message": True} if mode == "prefill" else {"add_generation_prompt": True}
    return tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template, **kwargs)


def render_chatml(messages: list[dict], default_system: str | None) -> str:
    """ChatML written out in Python: what the Go template produces, step for step (a final
    assistant message is a prefill, as in Ollama)."""
    out = []
    if default_system is not None and messages and messages[0]["role"] != "system":
        out.append(f"{IM_START}system\n{default_system}{IM_END}\n")
    for i, m in enumerate(messages):
        last = i == len(messages) - 1
        if last and m["role"] == "assistant":
            out.append(f"{IM_START}assistant\n{m['content']}")
        else:
            out.append(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n")
        if last and m["role"] != "assistant":
            out.append(f"{IM_START}assistant\n")
    return "".join(out)


def detect(tokenizer) -> ChatFormat:
    """The template's family, or InputError saying why it cannot be carried to Ollama."""
    if not tokenizer.chat_template:
        raise InputError("the model has no chat template, so Ollama would not know how to write a conversation",
                         "fine-tune it with `loom finetune sft ... --template chatml`, or export --format gguf for plain completion")
    probe = render_hf(tokenizer, [{"role": "user", "content": "PROBE"}], "generate")
    default = None
    head = f"{IM_START}system\n"
    if probe.startswith(head) and IM_END in probe:
        default = probe[len(head):probe.index(IM_END)]
    fmt = ChatFormat("chatml", default, IM_END)
    for label, messages, mode in PROBES:
        try:
            got = render_hf(tokenizer, messages, mode)
        except Exception as e:  # a template that raises on a probe (e.g. no prefill support)
            raise InputError(f"the chat template fails on the '{label}' conversation: {e}",
                             "export --format gguf or hf (they carry the Jinja template as it is)") from e
        if got != render_chatml(messages, default):
            raise InputError(f"the chat template is not ChatML (it renders the '{label}' conversation differently), "
                             "and only ChatML templates are translated to Ollama's Go templates",
                             "export --format gguf or hf, which carry the Jinja template verbatim")
    if default is not None and ("{{" in default or '"""' in default):
        raise InputError("the template's default system prompt contains '{{' or '\"\"\"', which a Modelfile cannot hold",
                         "export --format gguf")
    return fmt


def go_template(fmt: ChatFormat) -> str:
    """The Go text/template for Ollama's TEMPLATE (whitespace exact: `{{-` trims only layout newlines)."""
    default = ""
    if fmt.default_system is not None:
        default = ('{{- if and .Messages (ne (index .Messages 0).Role "system") }}'
                   f"{IM_START}system\n{fmt.default_system}{IM_END}\n"
                   "{{ end }}\n")
    return (default
            + "{{- range $i, $_ := .Messages }}\n"
            + "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
            + '{{- if and $last (eq .Role "assistant") }}' + f"{IM_START}assistant\n" + "{{ .Content }}\n"
            + "{{- else }}" + f"{IM_START}" + "{{ .Role }}\n{{ .Content }}" + f"{IM_END}\n" + "{{ end }}\n"
            + '{{- if and $last (ne .Role "assistant") }}' + f"{IM_START}assistant\n" + "{{ end }}\n"
            + "{{- end }}")


def modelfile(gguf_name: str, fmt: ChatFormat, system: str | None = None, stops: list[str] | None = None) -> str:
    """An Ollama Modelfile next to the GGUF (FROM is relative to the Modelfile's folder)."""
    if system is not None and '"""' in system:
        raise InputError('the system prompt contains """, which a Modelfile cannot hold', "rephrase it")
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{go_template(fmt)}"""']
    for stop in dict.fromkeys([fmt.end_of_turn, *(stops or [])]):
        lines.append(f'PARAMETER stop "{stop}"')
    if system is not None:
        lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"
