"""tool_choice "auto" on a local model: a call is held back until it is whole, then kept only if it is
grounded in the conversation (loom.model.grounding). A call with no argument the conversation holds
(get_weather(city="北京") for "你好") is dropped:
  - nothing was said before it: the request runs again with the tools switched off (choice none),
    so the reply is the text answer the user needed;
  - text came before it: that text is the reply, finish_reason "stop".
The choice's `loom` extra names what was dropped. Required and named choices are never gated (the
caller asked for a call), nor requests that set `ground_tool_calls: false`.

Cost: a call's deltas reach a streaming client when the call is complete, not token by token (the
grammar holds the call, so it completes within its max length); a dropped call costs a second
generation (~1-3 s on a 0.5B model on 2 cores)."""

from __future__ import annotations

from dataclasses import replace

from loom.backends.base import Chunk, Request, join_calls
from loom.model.grounding import conversation_units, grounded
from loom.model.tools import ToolSet

WHY = "no argument of the call appears in the conversation (a call the request did not ask for)"


def gated(request: Request) -> bool:
    tools = request.tools
    return tools is not None and tools.active and tools.choice == "auto" and tools.ground and request.messages is not None


def without_tools(request: Request) -> Request:
    return replace(request, tools=ToolSet(request.tools.tools, "none"))


class CallGate:
    """Feed it a generation's chunks; it says what to pass on, and whether to run again without tools."""

    def __init__(self, request: Request) -> None:
        self.tools = request.tools
        self.said = conversation_units(request.messages or [])
        self.held: list[Chunk] = []
        self.text_sent = False
        self.dropped: list[dict] = []
        self.spent = 0  # completion tokens of a dropped generation, added to the rerun's

    def feed(self, chunk: Chunk) -> tuple[list[Chunk], bool]:
        """(chunks to pass on now, run again without tools)."""
        if not self.held and not chunk.tool_calls:
            self.text_sent = self.text_sent or bool(chunk.text)
            return [chunk], False
        self.held.append(chunk)
        if chunk.finish_reason is None:
            return [], False
        calls: list[dict] = []
        for held in self.held:
            join_calls(calls, held.tool_calls)
        if not calls or any(self._grounded(c) for c in calls):
            return self.held, False
        self.dropped = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
        if not self.text_sent:
            self.spent = chunk.completion_tokens
            return [], True
        text = [replace(c, tool_calls=None, finish_reason=None) for c in self.held if c.text]
        return text + [replace(chunk, text="", tool_calls=None, logprobs=None, finish_reason="stop",
                               extra=(chunk.extra or {}) | self.note())], False

    def finish(self, chunk: Chunk) -> Chunk:
        """The rerun's last chunk, with the dropped call named and both generations' tokens counted."""
        return replace(chunk, completion_tokens=chunk.completion_tokens + self.spent, extra=(chunk.extra or {}) | self.note())

    def note(self) -> dict:
        return {"dropped_tool_calls": self.dropped, "why": WHY}

    def _grounded(self, call: dict) -> bool:
        tool = self.tools.get(call["name"])
        return tool is None or grounded(call["arguments"], tool.parameters, self.said)
