"""Chat examples -> token ids and a loss mask, through the base model's own chat template.

The mask is the part that goes wrong in other tools: a model must learn to *end* its turn with the
template's end-of-turn token (`<|im_end|>` for ChatML) or generation never stops, and it must never
be trained to write the user's prompt. So for every assistant message i:

    prefix = render(messages[:i], add_generation_prompt=True)    ends with "<|im_start|>assistant\n"
    upto   = render(messages[:i + 1])                            ends with "...answer<|im_end|>\n"

and the characters [len(prefix), len(upto)) are the assistant's; the tokens whose character offsets
fall inside are learnt, up to and including the end-of-turn token (the newline the template writes
after it is not: generation stops before it). A template that writes no end-of-turn token gets the
tokenizer's EOS appended and learnt instead. The whole conversation is tokenised once, so token
boundaries are exactly those seen at inference.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from loom.errors import InputError

IGNORE = -100  # label of a token that is not learnt (cross_entropy's ignore_index)

# ChatML: the layout SmolLM2 and Qwen2.5 were tuned with. Loom's own tokenizers carry it, and a base
# without a template gets it with `--template chatml`, so every Loom chat model speaks one protocol.
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TEMPLATES = {"chatml": (CHATML, [IM_START, IM_END], IM_END)}
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>")
END_OF_TEXT = ("<|endoftext|>",)  # GPT-2 / Qwen document end: never part of an answer either


def ensure_template(tokenizer, template: str | None, base: str) -> int:
    """Give the tokenizer a chat template. Returns how many special tokens were added (the model's
    embeddings must then grow by that many rows)."""
    if template is None:
        if not tokenizer.chat_template:
            raise InputError(f"base {base!r} has no chat template, so its conversations cannot be rendered",
                             "pass --template chatml to add one (new <|im_start|>/<|im_end|> tokens are trained too)")
        return 0
    if template not in TEMPLATES:
        raise InputError(f"unknown chat template {template!r}", f"choose one of: {', '.join(TEMPLATES)}")
    text, specials, end = TEMPLATES[template]
    missing = [t for t in specials if t not in tokenizer.get_vocab()]
    added = tokenizer.add_special_tokens({"additional_special_tokens": missing}) if missing else 0
    tokenizer.chat_template = text
    tokenizer.eos_token = end  # generation (and the stop set) end at the end-of-turn token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = end
    return added


def stop_token_ids(tokenizer) -> set[int]:
    """EOS plus every end-of-turn or end-of-text token the vocabulary holds: where generation stops
    (both engines) and what an assistant turn may end with in SFT labels. The one definition."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    return ids | {vocab[t] for t in END_OF_TURN + END_OF_TEXT if t in vocab}


def end_of_turn_id(tokenizer) -> int | None:
    """The one token a chat turn ends with (for ChatML, <|im_end|>): what an exported model's engine
    must stop at. The first END_OF_TURN token the template uses (or that is EOS), else EOS."""
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN:
        if token in vocab and (token in (tokenizer.chat_template or "") or token == tokenizer.eos_token):
            return vocab[token]
    return tokenizer.eos_token_id


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE where not learnt, else the token id itself (the loss shifts by one)

    @property
    def learnt(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


@dataclass
class EncodeReport:
    kept: int = 0
    truncated: int = 0  # longer than max_len: cut at max_len (their tail turns are lost)
    dropped_too_long: int = 0  # nothing left to learn within max_len
    lengths: list[int] = field(default_factory=list)  # tokens per kept example, after truncation
    learnt_tokens: int = 0

    def summary(self) -> dict:
        lengths = sorted(self.lengths) or [0]
        return {"kept": self.kept, "truncated": self.truncated, "dropped_too_long": self.dropped_too_long,
                "tokens": sum(self.lengths), "learnt_tokens": self.learnt_tokens,
                "length_mean": round(statistics.fmean(lengths), 1), "length_p50": lengths[len(lengths) // 2],
                "length_p95": lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))], "length_max": lengths[-1]}


def _render(tokenizer, messages, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, conversation: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """(rendered text, [(start, end) character span of each assistant turn incl. its end-of-turn text])."""
    text = _render(tokenizer, conversation, False)
    spans = []
    for i, message in enumerate(conversation):
        if message["role"] != "assistant":
            continue
        prefix = _render(tokenizer, conversation[:i], True)
        upto = _render(tokenizer, conversation[: i + 1], False)
        if not upto.startswith(prefix) or not text.startswith(upto):
            raise InputError("the chat template renders a conversation differently from its own beginning, so the "
                             "assistant's tokens cannot be located", "use a template that appends turns (e.g. --template chatml)")
        spans.append((len(prefix), len(upto)))
    return text, spans


def encode(tokenizer, conversation: list[dict], stop_ids: set[int]) -> Encoded:
    text, spans = assistant_spans(tokenizer, conversation)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE] * len(ids)
    for start, end in spans:
        inside = [k for k, (a, b) in enumerate(offsets) if a < end and b > start]  # overlapping the turn
        ends = [k for k in inside if ids[k] in stop_ids]
        if ends:
            inside = [k for k in inside if k <= ends[-1]]  # learn up to the end-of-turn token, not the newline after it
        for k in inside:
            labels[k] = ids[k]
        if not ends and inside and tokenizer.eos_token_id is not None:  # a template without an end-of-turn token
            at = inside[-1] + 1
            ids.insert(at, tokenizer.eos_token_id)
            labels.insert(at, tokenizer.eos_token_id)
            offsets.insert(at, (end, end))
    return Encoded(ids, labels)


def encode_all(tokenizer, conversations: list[list[dict]], max_len: int) -> tuple[list[Encoded], EncodeReport]:
    """Every conversation encoded, cut to max_len tokens (counted); those left with nothing to learn are dropped."""
    stop_ids = stop_token_ids(tokenizer)
    report, out = EncodeReport(), []
    for conversation in conversations:
        example = encode(tokenizer, conversation, stop_ids)
        if len(example.input_ids) > max_len:
            example = Encoded(example.input_ids[:max_len], example.labels[:max_len])
            if example.learnt == 0:
                report.dropped_too_long += 1
                continue
            report.truncated += 1
        out.append(example)
        report.kept += 1
        report.lengths.append(len(example.input_ids))
        report.learnt_tokens += example.learnt
    return out, report
