"""Tools a chat request declares: checking them, rendering them into the prompt, and the grammars that
hold a model's calls to them.

    tools = ToolSet([Tool("get_weather", "Weather for a city", {"type": "object", ...})], choice="auto")
    prompt = render_chat(tokenizer, messages, tools)          # the model's own template, or the generic format
    grammar = calls_grammar(tokenizer, tools, "tagged")       # llguidance lark: <tool_call> {...} </tool_call>

A call is the JSON object {"name": ..., "arguments": {...}} (Hermes / Qwen2.5 layout), inside
<tool_call></tool_call> tags, a ```json fence, or bare. A template that renders `tools` and
`tool_calls` itself (Qwen2.5's does) gets them as they are, arguments as objects; any other template
gets the generic format (docs/tools.md): the tool list in the system message, earlier calls as tagged
blocks in the assistant's text, tool results as user turns wrapped in <tool_response> tags.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from loom.errors import InputError
from loom.model.constrain import bounded

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Whitespace a call may use between JSON tokens: nothing, one space, or a newline and an indent, as
# json.dumps writes with or without indent= (Qwen2.5-Coder pretty-prints with 2-4 spaces a level). An
# unbounded run lets a weak model spend its whole budget on blanks.
_WS = r"(\n[ \t]{0,16}| )?"
_WS_RUN = r"[ \t\n]{1,4}"  # between tags and calls

GENERIC_INSTRUCTIONS = (
    "# Tools\n\nYou can call the functions below. Their signatures, one JSON object per line:\n<tools>\n{tools}\n</tools>\n\n"
    "To call one, reply with this block (one block per call) and nothing else:\n"
    "<tool_call>\n{{\"name\": <function name>, \"arguments\": <arguments as a JSON object>}}\n</tool_call>\n"
    "When none of the functions is needed, answer in plain text."
)
ANSWER_NOTE = "The tool results above answer the request. Reply to the user in plain text, in the user's language."


@dataclass
class Tool:
    name: str
    description: str = ""
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})

    def openai(self) -> dict:
        """The wire shape templates expect: {"type": "function", "function": {...}}."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass
class ToolSet:
    """The tools of one request and how they may be used. choice: "auto" (the model decides), "required"
    (at least one call), "none" (no calls; the tools are left out of the prompt) or a tool's name
    (exactly one call to it)."""

    tools: list[Tool]
    choice: str = "auto"
    parallel: bool = True
    ground: bool = True  # auto: drop calls none of whose arguments the conversation holds (backends/callgate.py)
    note: str = ANSWER_NOTE  # added after tool results when the model may call again (an agent's asks it to go on if need be)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tools]
        for i, tool in enumerate(self.tools):
            where = f"tools[{i}].function"
            if not NAME_PATTERN.match(tool.name or ""):
                raise InputError(f"{where}.name {tool.name!r} is not 1-64 letters, digits, '_' or '-'",
                                 "rename the function, e.g. get_weather", param=f"{where}.name")
            if names.index(tool.name) != i:
                raise InputError(f"{where}.name {tool.name!r} is declared twice", "give each tool its own name",
                                 param=f"{where}.name")
            if not isinstance(tool.parameters, dict) or tool.parameters.get("type", "object") != "object":
                raise InputError(f"{where}.parameters must be a JSON Schema of type object",
                                 "send e.g. {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}",
                                 param=f"{where}.parameters")
        if self.choice not in ("auto", "required", "none") and self.choice not in names:
            raise InputError(f"tool_choice names {self.choice!r}, which is not among the declared tools {names}",
                             "name one of the tools, or use auto / required / none", param="tool_choice")
        if self.choice != "none" and not self.tools:
            raise InputError(f"tool_choice {self.choice!r} needs tools", "declare tools, or drop tool_choice", param="tool_choice")

    @property
    def active(self) -> bool:
        """Calls may happen (tools declared and not switched off)."""
        return bool(self.tools) and self.choice != "none"

    def get(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)


def check_grammars(tokenizer, tools: ToolSet) -> None:
    """Compile each tool's parameters once so an unenforceable schema is a 400 naming that tool."""
    from loom.model.constrain import schema_grammar

    for i, tool in enumerate(tools.tools):
        schema_grammar(_with_layout(tool.parameters), tokenizer, where=f"tools[{i}].function.parameters")


# ---- prompts -----------------------------------------------------------------------------------------

def template_has_tools(tokenizer) -> bool:
    """The chat template renders a tool list and earlier calls itself (Qwen2.5, Llama 3.1, Hermes...)."""
    template = tokenizer.chat_template or ""
    if isinstance(template, dict):  # several named templates: the default one
        template = template.get("default", "")
    return "tools" in template and "tool_calls" in template


def render_chat(tokenizer, messages: list[dict], tools: ToolSet | None) -> str:
    """Prompt text for a conversation that may declare tools and hold earlier calls and their results.
    When it ends with tool results and the model may call again (choice auto), a short note asks for
    the answer: without it Qwen2.5-Coder-0.5B called the same tool again on 4 of 4 follow-ups."""
    declared = tools.tools if tools is not None and tools.active else []
    answer_now = bool(declared) and tools.choice == "auto" and messages[-1].get("role") == "tool"
    if template_has_tools(tokenizer):
        shaped = [_native(m) for m in messages]
        extra = {"tools": [t.openai() for t in declared]} if declared else {}
        if answer_now:
            try:
                return tokenizer.apply_chat_template(shaped + [{"role": "system", "content": tools.note}], tokenize=False,
                                                     add_generation_prompt=True, **extra)
            except Exception:  # noqa: BLE001  a template that refuses a late system turn goes without the note
                pass
        return tokenizer.apply_chat_template(shaped, tokenize=False, add_generation_prompt=True, **extra)
    shaped = _generic(messages, declared)
    if answer_now:
        shaped[-1] = shaped[-1] | {"content": f"{shaped[-1]['content']}\n\n{tools.note}"}
    return tokenizer.apply_chat_template(shaped, tokenize=False, add_generation_prompt=True)


def _native(message: dict) -> dict:
    """Templates write `arguments | tojson`: they take the arguments as an object, not the wire's string."""
    if not message.get("tool_calls"):
        return message
    calls = [{"type": "function", "id": c.get("id"),
              "function": {"name": c["function"]["name"], "arguments": _arguments(c["function"].get("arguments"))}}
             for c in message["tool_calls"]]
    return message | {"tool_calls": calls}


def _arguments(raw):
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw if raw is not None else {}


def call_text(name: str, arguments) -> str:
    """One call as the generic format writes it."""
    body = json.dumps({"name": name, "arguments": _arguments(arguments)}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


def _generic(messages: list[dict], declared: list[Tool]) -> list[dict]:
    """Messages for a template that knows no tools: only system, user and assistant turns."""
    out: list[dict] = []
    for i, m in enumerate(messages):
        role, content = m["role"], m.get("content") or ""
        if role == "assistant" and m.get("tool_calls"):
            blocks = [call_text(c["function"]["name"], c["function"].get("arguments")) for c in m["tool_calls"]]
            out.append({"role": "assistant", "content": "\n".join(([content] if content else []) + blocks)})
        elif role == "tool":
            result = f"<tool_response>\n{content}\n</tool_response>"
            if i > 0 and messages[i - 1]["role"] == "tool":
                out[-1]["content"] += "\n" + result  # consecutive results share one user turn
            else:
                out.append({"role": "user", "content": result})
        else:
            out.append({"role": role, "content": content})
    if declared:
        listing = "\n".join(json.dumps(t.openai()["function"], ensure_ascii=False) for t in declared)
        instructions = GENERIC_INSTRUCTIONS.format(tools=listing)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{instructions}"}
        else:
            out.insert(0, {"role": "system", "content": instructions})
    return out


# ---- grammars ----------------------------------------------------------------------------------------

def _with_layout(schema: dict) -> dict:
    return bounded(schema) | {"x-guidance": {"whitespace_flexible": True, "whitespace_pattern": _WS}}


def call_schema(tools: list[Tool]) -> dict:
    """{"name": one of the tools, "arguments": that tool's parameters}, name first."""
    options = [{"type": "object", "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                "required": ["name", "arguments"], "additionalProperties": False} for t in tools]
    return _with_layout(options[0] if len(options) == 1 else {"anyOf": options})


def _literal(tokenizer, text: str) -> str:
    """A tag in lark: the token itself when the vocabulary has it as one token (Qwen2.5's <tool_call> is
    151657, which llguidance only matches by id), else the text."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return f"<[{ids[0]}]>" if len(ids) == 1 else json.dumps(text)


def calls_grammar(tokenizer, tools: ToolSet, form: str) -> str:
    """A lark grammar (llguidance) for the calls of one reply. form:
    "tagged"  the whole reply: <tool_call> call </tool_call>, repeated when parallel (required / named choice);
    "opened"  what follows a <tool_call> the model already wrote (auto choice);
    "fenced"  ```json call ``` ; "bare"  call ; "list"  [call, ...]."""
    named = tools.choice not in ("auto", "required", "none")
    schema = call_schema([tools.get(tools.choice)] if named else tools.tools)
    many = tools.parallel and not named
    open_, close = _literal(tokenizer, CALL_OPEN), _literal(tokenizer, CALL_CLOSE)
    # SEP is whitespace of at least one character, always optional: a lexeme that may match nothing
    # leaves the parser unsure whether the reply can end, and "\n" after a call then forced another one.
    rules = {
        "tagged": "start: block (SEP? block)* SEP?\n" if many else "start: block\n",
        "opened": f"start: SEP? call SEP? {close} (SEP? block)* SEP?\n" if many else f"start: SEP? call SEP? {close}\n",
        "fenced": "start: \"```\" \"json\"? SEP? call SEP? \"```\"\n",
        "bare": "start: call\n",
        "list": "start: \"[\" SEP? call (SEP? \",\" SEP? call)* SEP? \"]\"\n" if many else "start: \"[\" SEP? call SEP? \"]\"\n",
    }[form]
    return rules + f"block: {open_} SEP? call SEP? {close}\nSEP: /{_WS_RUN}/\ncall: %json {json.dumps(schema)}\n"


def arguments_valid(tokenizer, tool: Tool, arguments: str) -> bool:
    """The arguments string parses and follows the tool's parameters (checked by the same grammar engine)."""
    import llguidance

    from loom.model.constrain import ll_tokenizer

    try:
        value = json.loads(arguments)
    except (json.JSONDecodeError, TypeError):
        return False
    if not isinstance(value, dict):
        return False
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(_with_layout(tool.parameters)))
    matcher = llguidance.LLMatcher(ll_tokenizer(tokenizer), grammar, log_level=0)
    ids = tokenizer.encode(json.dumps(value, ensure_ascii=False), add_special_tokens=False)
    return matcher.consume_tokens(ids) and matcher.is_accepting()
