"""Turning backend chunk streams into OpenAI responses: server-sent events (one `data: {json}` per
piece, then `data: [DONE]`) or a collected answer. n > 1 choices run concurrently (the batching
engine decodes them together) and their events interleave, each tagged with its index."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

from loom.backends.base import Chunk, join_calls
from loom.errors import LoomError
from loom.serve.errors import body, from_loom

log = logging.getLogger(__name__)


def shape_logprobs(entries: list | None, chat: bool, offset: int = 0) -> dict | None:
    """TokenLogprob entries in OpenAI's shape: chat {"content": [{token, logprob, bytes, top_logprobs}]},
    completions {"tokens", "token_logprobs", "top_logprobs", "text_offset"} (offsets from `offset`).
    None when logprobs were not asked for."""
    if entries is None:
        return None
    if chat:
        return {"content": [{"token": e.token, "logprob": e.logprob, "bytes": e.bytes,
                             "top_logprobs": [{"token": t, "logprob": lp, "bytes": b} for t, lp, b in e.top]}
                            for e in entries], "refusal": None}
    offsets, at = [], offset
    for e in entries:
        offsets.append(at)
        at += len(e.token)
    return {"tokens": [e.token for e in entries], "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [{t: lp for t, lp, _ in e.top} for e in entries], "text_offset": offsets}


def shape_call_deltas(deltas: list[dict]) -> list[dict]:
    """Internal tool-call deltas in OpenAI's streamed shape: id, type and name once, then arguments."""
    out = []
    for d in deltas:
        fn = {"name": d["name"], "arguments": d["arguments"]} if "id" in d else {"arguments": d["arguments"]}
        out.append({"index": d["index"]} | ({"id": d["id"], "type": "function"} if "id" in d else {}) | {"function": fn})
    return out


def shape_calls(calls: list[dict]) -> list[dict]:
    """Whole calls (backends.base.join_calls) in OpenAI's message shape."""
    return [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]


def _dump(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def sse_events(streams: list[AsyncIterator[Chunk]], firsts: list[Chunk], kind: str, meta: dict,
                     include_usage: bool, done: Callable[[int, int], None], top_extra: dict | None = None) -> AsyncIterator[str]:
    """`top_extra`: Loom's notes on the whole request (how image parts were read), sent once, on the first event."""
    chat = kind.startswith("chat")
    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict], **extra) -> str:
        payload = meta | {"object": obj, "choices": choices} | extra
        if include_usage and "usage" not in payload:
            payload["usage"] = None  # OpenAI: null on every chunk but the last
        return _dump(payload)

    offsets = [0] * len(streams)  # completions: characters sent so far per choice (text_offset)

    def choice(i: int, text: str, finish: str | None, extra: dict | None = None, logprobs: list | None = None,
               calls: list[dict] | None = None) -> dict:
        if chat:
            delta = {"content": text} if text else {}
            if calls:
                delta["tool_calls"] = shape_call_deltas(calls)
            if extra and "citations" in extra:
                delta["citations"] = extra["citations"]
            shaped = {"index": i, "delta": delta, "finish_reason": finish, "logprobs": shape_logprobs(logprobs, True)}
        else:
            shaped = {"index": i, "text": text, "finish_reason": finish, "logprobs": shape_logprobs(logprobs, False, offsets[i])}
            offsets[i] += len(text)
        return shaped | ({"loom": extra} if extra else {})

    inbox: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, stream: AsyncIterator[Chunk], chunk: Chunk) -> None:
        try:
            while True:
                await inbox.put((i, chunk))
                if chunk.finish_reason is not None:
                    return
                chunk = await anext(stream)
        except Exception as e:  # noqa: BLE001  reported to the client as an error event
            await inbox.put((i, e))

    tasks = [asyncio.ensure_future(pump(i, s, f)) for i, (s, f) in enumerate(zip(streams, firsts))]
    try:
        if chat:
            yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}
                         for i in range(len(streams))], **({"loom": top_extra} if top_extra else {}))
        remaining, prompt_tokens, completion_tokens = len(streams), 0, 0
        while remaining:
            i, item = await inbox.get()
            if isinstance(item, Exception):
                if isinstance(item, LoomError):  # same type and code as the status it would have had
                    shaped = from_loom(item)
                    yield _dump(body(shaped.message, shaped.type, shaped.code, shaped.param))
                else:  # a defect, not the client's doing: the operator's log gets the traceback
                    log.error("stream failed mid-answer", exc_info=item)
                    yield _dump(body(f"{type(item).__name__}: {item}", "server_error"))
                return
            if item.text or item.tool_calls or (item.extra and item.finish_reason is None):  # an agent's step arrives as an extra
                extra = item.extra if item.finish_reason is None else None
                yield event([choice(i, item.text, None, extra, logprobs=item.logprobs, calls=item.tool_calls)])
            if item.finish_reason is not None:
                yield event([choice(i, "", item.finish_reason, item.extra)])
                remaining -= 1
                prompt_tokens = item.prompt_tokens
                completion_tokens += item.completion_tokens
        done(prompt_tokens, completion_tokens)
        if include_usage:
            yield event([], usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                   "total_tokens": prompt_tokens + completion_tokens})
        yield "data: [DONE]\n\n"
    finally:  # also runs when the client disconnects: cancelling the pumps stops the generations
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            await stream.aclose()


async def collect_choices(streams: list[AsyncIterator[Chunk]], firsts: list[Chunk]) -> list[dict]:
    async def one(stream: AsyncIterator[Chunk], chunk: Chunk) -> dict:
        pieces, logprobs, calls = [chunk.text], None if chunk.logprobs is None else list(chunk.logprobs), []
        join_calls(calls, chunk.tool_calls)
        while chunk.finish_reason is None:
            chunk = await anext(stream)
            pieces.append(chunk.text)
            join_calls(calls, chunk.tool_calls)
            if logprobs is not None and chunk.logprobs:  # asked for: every chunk of the choice carries a list
                logprobs.extend(chunk.logprobs)
        return {"text": "".join(pieces), "finish_reason": chunk.finish_reason, "extra": chunk.extra, "logprobs": logprobs,
                "prompt_tokens": chunk.prompt_tokens, "completion_tokens": chunk.completion_tokens, "tool_calls": calls}

    return list(await asyncio.gather(*(one(s, f) for s, f in zip(streams, firsts))))
