"""JSON mode: constrain sampling so the output is one JSON object that parses.

`JsonPrefix` is a character-level pushdown automaton for "a prefix of a JSON object". During
sampling each candidate token's text is fed to a copy of the automaton; tokens that would make the
text invalid are rejected and the next candidate is drawn (rejection sampling: cheap, because the
model's first choice is usually fine). End-of-sequence is only allowed once the object is closed,
and when the token budget runs out `closing_suffix()` gives the shortest text that completes it, so
even a `finish_reason: length` answer parses.
"""

from __future__ import annotations

import copy

_WS = " \t\n\r"
_MAX_WS_RUN = 4  # longer whitespace runs are refused: weak models otherwise pad forever
_LITERALS = {"t": "rue", "f": "alse", "n": "ull"}
# Number sub-states: the ones where the number may end.
_NUM_END_OK = {"int0", "int", "frac", "exp"}


class JsonPrefix:
    def __init__(self) -> None:
        self.stack: list[str] = []  # "o" object, "a" array
        self.mode = "start"  # start, value, value_or_close, key_or_close, key, colon, after, string, number, literal, done
        self.in_key = False  # the current string is an object key
        self.escape = 0  # 0: none; -1: after a backslash; 1-4: hex digits still due in \uXXXX
        self.num = ""  # number sub-state
        self.literal = ""  # rest of true/false/null still due
        self.ws_run = 0

    def clone(self) -> "JsonPrefix":
        twin = copy.copy(self)
        twin.stack = list(self.stack)
        return twin

    @property
    def complete(self) -> bool:
        return self.mode == "done"

    def feed(self, text: str) -> bool:
        """Advance over text; False (state then undefined: feed a clone) if it breaks the prefix."""
        return all(self._char(ch) for ch in text)

    def accepts(self, text: str) -> bool:
        return self.clone().feed(text)

    def _char(self, ch: str) -> bool:
        mode = self.mode
        if mode == "string":
            return self._string_char(ch)
        if mode == "literal":
            if not self.literal or ch != self.literal[0]:
                return False
            self.literal = self.literal[1:]
            if not self.literal:
                self._end_value()
            return True
        if mode == "number":
            if self._number_char(ch):
                return True
            if self.num not in _NUM_END_OK:
                return False
            self._end_value()
            return self._char(ch)  # the char after a number is read in the "after" state
        if ch in _WS:
            if mode == "done" or self.ws_run >= _MAX_WS_RUN:
                return False
            self.ws_run += 1
            return True
        self.ws_run = 0
        if mode == "start":
            return ch == "{" and self._open("o")
        if mode in ("value", "value_or_close"):
            if mode == "value_or_close" and ch == "]":
                return self._close("a")
            return self._start_value(ch)
        if mode in ("key", "key_or_close"):
            if mode == "key_or_close" and ch == "}":
                return self._close("o")
            if ch != '"':
                return False
            self.mode, self.in_key = "string", True
            return True
        if mode == "colon":
            if ch != ":":
                return False
            self.mode = "value"
            return True
        if mode == "after":
            top = self.stack[-1]
            if ch == ",":
                self.mode = "key" if top == "o" else "value"
                return True
            return self._close(top) if ch == ("}" if top == "o" else "]") else False
        return False  # done: nothing may follow the object

    def _start_value(self, ch: str) -> bool:
        if ch == "{":
            return self._open("o")
        if ch == "[":
            return self._open("a")
        if ch == '"':
            self.mode, self.in_key = "string", False
            return True
        if ch in _LITERALS:
            self.mode, self.literal = "literal", _LITERALS[ch]
            return True
        if ch == "-" or ch.isdigit() and ch.isascii():
            self.mode, self.num = "number", "sign" if ch == "-" else ("int0" if ch == "0" else "int")
            return True
        return False

    def _string_char(self, ch: str) -> bool:
        if self.escape == -1:
            if ch == "u":
                self.escape = 4
                return True
            self.escape = 0
            return ch in '"\\/bfnrt'
        if self.escape > 0:
            if ch not in "0123456789abcdefABCDEF":
                return False
            self.escape -= 1
            return True
        if ch == "\\":
            self.escape = -1
        elif ch == '"':
            if self.in_key:
                self.mode = "colon"
            else:
                self._end_value()
        elif ord(ch) < 0x20:
            return False  # control characters must be escaped inside strings
        return True

    def _number_char(self, ch: str) -> bool:
        digit = ch.isascii() and ch.isdigit()
        state = self.num
        nxt = {
            "sign": "int0" if ch == "0" else ("int" if digit else None),
            "int0": "frac_start" if ch == "." else ("exp_start" if ch in "eE" else None),
            "int": "int" if digit else ("frac_start" if ch == "." else ("exp_start" if ch in "eE" else None)),
            "frac_start": "frac" if digit else None,
            "frac": "frac" if digit else ("exp_start" if ch in "eE" else None),
            "exp_start": "exp" if digit else ("exp_sign" if ch in "+-" else None),
            "exp_sign": "exp" if digit else None,
            "exp": "exp" if digit else None,
        }[state]
        if nxt is None:
            return False
        self.num = nxt
        return True

    def _open(self, kind: str) -> bool:
        self.stack.append(kind)
        self.mode = "key_or_close" if kind == "o" else "value_or_close"
        return True

    def _close(self, kind: str) -> bool:
        if not self.stack or self.stack[-1] != kind:
            return False
        self.stack.pop()
        self._end_value()
        return True

    def _end_value(self) -> None:
        self.mode = "after" if self.stack else "done"

    def closing_suffix(self) -> str:
        """Shortest-ish text that turns the current prefix into a complete JSON object."""
        probe, out = self.clone(), []

        def push(text: str) -> None:
            ok = probe.feed(text)
            assert ok, f"closing suffix {text!r} rejected in mode {probe.mode}"
            out.append(text)

        if probe.mode == "start":
            push("{")
        if probe.mode == "string":
            if probe.escape == -1:
                push("n")
            elif probe.escape > 0:
                push("0" * probe.escape)
            push('"')
        if probe.mode == "number" and probe.num not in _NUM_END_OK:
            push("0")
        if probe.mode == "number":
            probe._end_value()
        if probe.mode == "literal":
            push(probe.literal)
        if probe.mode == "key":
            push('"":')
        if probe.mode == "colon":
            push(":")
        if probe.mode == "value":
            push("null")
        while probe.mode != "done":
            push("}" if probe.stack[-1] == "o" else "]")
        return "".join(out)
