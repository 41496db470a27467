"""Finding a model's tool calls in its output as it decodes, holding them to the declared tools, and
streaming them as OpenAI tool-call deltas.

model.decode.SequenceState drives one CallTracker per sequence. After every token it hands over the
completion text so far; the tracker answers how much of it is plain content (safe to show) and, once
the model has started a call, installs a grammar (model.tools.calls_grammar) so the rest of the call
can only name a declared tool with arguments that follow its parameters. Forms recognised anywhere in
the text: a <tool_call> tag; a ```json fence, a bare object or a list whose first key is "name" with a
declared tool's name as its value. Text that only looks like a call to an undeclared tool stays content.
With tool_choice "required" or a named tool the grammar holds the reply from its first token.

Deltas: {"index", "id", "name", "arguments": ""} once per call, then {"index", "arguments": piece}; the
pieces of a call join to its arguments string, exactly the JSON the model wrote.
"""

from __future__ import annotations

import json
import re
import uuid

from loom.model.tools import CALL_OPEN, Tool, ToolSet, arguments_valid, calls_grammar

_CALL_KEYS = re.compile(r'\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"(?:arguments|parameters)"\s*:\s*(?=\S)')
_HEADS = {"fenced": ('```json{"name":"', '```{"name":"'), "list": ('[{"name":"',), "bare": ('{"name":"',)}


def value_end(text: str, start: int) -> int | None:
    """Index just past the JSON value that starts at text[start] (after optional whitespace), or None
    while it is incomplete. Strings are skipped with their escapes, so braces inside them do not count."""
    i, n = start, len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i >= n:
        return None
    if text[i] not in "{[\"":
        m = re.compile(r"-?[0-9.eE+-]+|true|false|null").match(text, i)
        return m.end() if m and m.end() < n else None  # a scalar is complete once something follows it
    depth, in_string = 0, False
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
                if depth == 0:
                    return i + 1
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


class CallTracker:
    def __init__(self, tokenizer, tools: ToolSet) -> None:
        self.tokenizer, self.tools = tokenizer, tools
        self.forced = tools.choice != "auto"  # required / named: the grammar holds the reply from token 0
        self.start: int | None = 0 if self.forced else None  # where the calls begin in the completion text
        self.constrained = self.forced
        self._scan = 0  # text before this offset is known to be content
        self._sent: list[tuple[str, int]] = []  # per streamed call: (id, characters of its arguments sent)

    def first_grammar(self) -> str | None:
        """The grammar for the whole reply when a call is required, else None (free text first)."""
        return calls_grammar(self.tokenizer, self.tools, "tagged") if self.forced else None

    # -- while decoding ----------------------------------------------------------------------------------

    def observe(self, text: str):
        """Look at the text so far; when a call has just begun, return (grammar, text the grammar must
        already have consumed) for the caller to install, else None."""
        if self.start is not None:
            return None
        found = self._find(text)
        if found is None:
            return None
        self.start, form = found
        if form == "opened":  # the grammar takes over after the tag the model wrote
            return calls_grammar(self.tokenizer, self.tools, "opened"), text[self.start + len(CALL_OPEN):]
        return calls_grammar(self.tokenizer, self.tools, form), text[self.start:]

    def _find(self, text: str) -> tuple[int, str] | None:
        """The earliest call start in text[self._scan:]; advances _scan past what can no longer start one."""
        i = self._scan
        while True:
            candidates = [p for p in (text.find(c, i) for c in ("<", "`", "{", "[")) if p >= 0]
            if not candidates:
                self._scan = len(text)
                return None
            p = min(candidates)
            verdict = self._classify(text[p:])
            if verdict == "maybe":
                self._scan = p
                return None
            if verdict != "no":
                return p, verdict
            i = p + 1

    def _classify(self, tail: str) -> str:
        """'no', 'maybe' (could still become a call) or the form of the call tail starts with."""
        if tail[0] == "<":
            if tail.startswith(CALL_OPEN):
                return "opened"
            return "maybe" if CALL_OPEN.startswith(tail) else "no"
        compact = re.sub(r"\s+", "", tail[:200])
        for form, heads in _HEADS.items():
            for head in heads:
                if len(compact) < len(head):
                    if head.startswith(compact):
                        return "maybe"
                    continue
                if not compact.startswith(head):
                    continue
                rest = compact[len(head):]
                name = rest.split('"', 1)[0]
                if '"' not in rest:  # the name is still being written
                    return "maybe" if any(t.name.startswith(name) for t in self.tools.tools) else "no"
                return form if self.tools.get(name) is not None else "no"
        if tail.startswith("```") and len(compact) < len("```json"):  # ``` then the language, still coming
            return "maybe"
        return "no"

    def content_end(self, text: str) -> int:
        """How much of text is content: all of it before a call begins, or a possible call's start."""
        if self.start is not None:
            return self.start
        return self._scan

    def deltas(self, text: str) -> list[dict]:
        """New tool-call deltas for the text so far (constrained calls only: others wait for the end)."""
        if self.start is None or not self.constrained:
            return []
        return self._delta_for(_locate(text, self.start), text)

    def _delta_for(self, located: list[tuple[str, int, int | None]], text: str) -> list[dict]:
        out = []
        for index, (name, args_at, args_end) in enumerate(located):
            if index == len(self._sent):
                self._sent.append((f"call_{uuid.uuid4().hex[:24]}", 0))
                out.append({"index": index, "id": self._sent[index][0], "name": name, "arguments": ""})
            call_id, sent = self._sent[index]
            end = args_end if args_end is not None else len(text.rstrip("\ufffd"))
            if end > args_at + sent:
                out.append({"index": index, "arguments": text[args_at + sent:end]})
                self._sent[index] = (call_id, end - args_at)
        return out

    # -- at the end ------------------------------------------------------------------------------------------

    def finish(self, text: str) -> tuple[int, list[dict]]:
        """(where content ends, the last deltas). A call the grammar did not hold (the model's own
        layout did not fit it) is parsed now and kept only if its tool is declared and its arguments
        validate; otherwise all of it is content."""
        if self.start is None:
            return len(text), []
        if self.constrained:
            return self.start, self.deltas(text)
        calls = parse_calls(text[self.start:], self.tools, self.tokenizer)
        if not calls:
            return len(text), []
        out = []
        for index, (name, arguments) in enumerate(calls):
            self._sent.append((f"call_{uuid.uuid4().hex[:24]}", len(arguments)))
            out.append({"index": index, "id": self._sent[-1][0], "name": name, "arguments": ""})
            out.append({"index": index, "arguments": arguments})
        return self.start, out

    def drop(self) -> None:
        """Forget any call: the reply was cut (a stop string) before it."""
        self.start, self.constrained, self._sent = None, False, []

    @property
    def called(self) -> bool:
        return bool(self._sent)


def _locate(text: str, start: int) -> list[tuple[str, int, int | None]]:
    """(name, where its arguments start, where they end or None) for each call in text[start:]."""
    out, at = [], start
    while (m := _CALL_KEYS.search(text, at)) is not None:
        name = json.loads(f'"{m.group(1)}"')
        end = value_end(text, m.end())
        out.append((name, m.end(), end))
        if end is None:
            break
        at = end
    return out


def parse_calls(text: str, tools: ToolSet, tokenizer) -> list[tuple[str, str]]:
    """(name, arguments JSON) of every call in text, in any of the recognised forms, each to a declared
    tool with arguments that validate; [] when any call fails (then the text is content)."""
    calls = []
    for name, args_at, args_end in _locate(text, 0):
        tool: Tool | None = tools.get(name)
        if args_end is None or tool is None:
            return []
        arguments = text[args_at:args_end].strip()
        if not arguments_valid(tokenizer, tool, arguments):
            return []
        calls.append((name, arguments))
    return calls
