"""Instruction-tuning data: read conversations from JSONL in any of the three formats people have.

    messages   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}   (OpenAI)
    alpaca     {"instruction": "...", "input": "...", "output": "...", "system": "..."}       (input/system optional)
    sharegpt   {"conversations": [{"from": "human"|"gpt"|"system", "value": "..."}, ...]}

Every row becomes a list of {"role", "content"} messages. A row that cannot be trained on (bad JSON,
no assistant turn, empty text, unknown role) is dropped and named by its line number with the
reason; reading fails only when no row is left, or when most rows are bad (a wrong file, not a few
bad lines)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loom.errors import InputError

Conversation = list[dict[str, str]]
ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                   "bing": "assistant", "model": "assistant", "system": "system"}
MAX_REASONS_SHOWN = 10


@dataclass
class ChatData:
    conversations: list[Conversation]
    formats: Counter = field(default_factory=Counter)  # rows read per format
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def describe_dropped(self) -> str:
        shown = "; ".join(f"line {n}: {why}" for n, why in self.dropped[:MAX_REASONS_SHOWN])
        more = f"; and {len(self.dropped) - MAX_REASONS_SHOWN} more" if len(self.dropped) > MAX_REASONS_SHOWN else ""
        return shown + more


class BadRow(ValueError):
    pass


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise BadRow(f"{where} is {type(value).__name__}, not text")
    return value


def _check(conv: Conversation) -> Conversation:
    if not any(m["role"] == "assistant" for m in conv):
        raise BadRow("no assistant turn to learn from")
    for i, m in enumerate(conv):
        if m["role"] not in ROLES:
            raise BadRow(f"message {i + 1} has role {m['role']!r} (expected one of {', '.join(ROLES)})")
        if m["role"] == "system" and i != 0:
            raise BadRow(f"message {i + 1} is a system message after the start")
        if m["role"] == "assistant" and not m["content"].strip():
            raise BadRow(f"message {i + 1} is an empty assistant turn")
    if conv[0]["role"] == "assistant" or (conv[0]["role"] == "system" and conv[1:2] and conv[1]["role"] == "assistant"):
        raise BadRow("the conversation starts with the assistant: there is nothing for it to answer")
    return conv


def parse_row(row) -> tuple[str, Conversation]:
    """(format name, messages) for one decoded JSON row; BadRow says why it cannot be used."""
    if not isinstance(row, dict):
        raise BadRow(f"a row must be a JSON object, got {type(row).__name__}")
    if "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise BadRow("'messages' must be a non-empty list")
        conv = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise BadRow(f"message {i + 1} needs 'role' and 'content'")
            conv.append({"role": _text(m["role"], f"message {i + 1} role"), "content": _text(m["content"], f"message {i + 1} content")})
        return "messages", _check(conv)
    if "conversations" in row:
        turns = row["conversations"]
        if not isinstance(turns, list) or not turns:
            raise BadRow("'conversations' must be a non-empty list")
        conv = []
        for i, t in enumerate(turns):
            if not isinstance(t, dict) or "from" not in t or "value" not in t:
                raise BadRow(f"turn {i + 1} needs 'from' and 'value'")
            who = _text(t["from"], f"turn {i + 1} 'from'")
            if who.lower() not in _SHAREGPT_ROLES:
                raise BadRow(f"turn {i + 1} is from {who!r} (expected human, gpt or system)")
            conv.append({"role": _SHAREGPT_ROLES[who.lower()], "content": _text(t["value"], f"turn {i + 1} value")})
        return "sharegpt", _check(conv)
    if "instruction" in row or "output" in row:
        instruction = _text(row.get("instruction", ""), "'instruction'")
        extra = _text(row.get("input", "") or "", "'input'")
        output = _text(row.get("output", ""), "'output'")
        prompt = f"{instruction}\n\n{extra}" if instruction.strip() and extra.strip() else instruction + extra
        if not prompt.strip():
            raise BadRow("'instruction' and 'input' are both empty")
        conv = [{"role": "system", "content": _text(row["system"], "'system'")}] if row.get("system") else []
        return "alpaca", _check(conv + [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}])
    raise BadRow(f"no 'messages', 'conversations' or 'instruction'/'output' field (found: {', '.join(sorted(row)[:6]) or 'none'})")


def read_conversations(path: str | Path) -> ChatData:
    """All usable conversations of a JSONL file (a .json file holding one list of rows also works)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"training data not found: {p}", "pass a .jsonl file of conversations (messages, alpaca or sharegpt rows)")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{p} is not UTF-8 text", "convert it to UTF-8") from e
    if not text.strip():
        raise InputError(f"{p} is empty", "write one JSON conversation per line")
    rows = _rows(text, p)
    data = ChatData([])
    for line_no, raw in rows:
        try:
            row = json.loads(raw) if isinstance(raw, str) else raw
            kind, conv = parse_row(row)
        except json.JSONDecodeError as e:
            data.dropped.append((line_no, f"not valid JSON ({e.msg})"))
            continue
        except BadRow as e:
            data.dropped.append((line_no, str(e)))
            continue
        data.conversations.append(conv)
        data.formats[kind] += 1
    if not data.conversations:
        raise InputError(f"no usable conversation in {p}: {data.describe_dropped()}",
                         'each line needs {"messages": [...]} with an assistant turn, alpaca {"instruction", "output"} '
                         'or sharegpt {"conversations": [...]}')
    if len(data.dropped) > len(data.conversations):
        raise InputError(f"{len(data.dropped)} of {len(rows)} rows of {p} are unusable: {data.describe_dropped()}",
                         "fix those rows (or remove them) and run again")
    return data


def _rows(text: str, p: Path) -> list[tuple[int, object]]:
    """(line number, raw JSON text or decoded row) for each non-blank line; a .json list counts each item."""
    stripped = text.lstrip()
    if p.suffix.lower() == ".json" and stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise InputError(f"{p} is not valid JSON ({e.msg} at line {e.lineno})", "fix the file, or write it as JSONL") from e
        return [(i + 1, item) for i, item in enumerate(items)]
    return [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]


def write_conversations(path: Path, conversations: list[Conversation]) -> None:
    """JSONL in the messages format, written atomically."""
    from loom import atomic

    atomic.write_text(path, "".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in conversations))
