"""A remote OpenAI-compatible engine (vLLM, Ollama, llama.cpp's server, another Loom) over httpx,
for models too big for this machine. Register it with

    loom models add big --backend openai http://gpu-host:8000/v1 --remote-model Qwen/Qwen2.5-7B-Instruct --api-key-env VLLM_KEY
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator

from loom.backends.base import Backend, Chunk, Embeddings, Info, Overloaded, Request, check_messages
from loom.errors import InputError, LoomError
from loom.catalog import ModelEntry


class RemoteError(LoomError):
    """The remote engine failed or is unreachable (HTTP 502)."""


class RemoteTimeout(RemoteError):
    """The remote engine did not finish within the model's timeout (HTTP 504)."""


class Remote(Backend):
    """Each request holds one of `max_concurrent` slots from the moment it is sent until its stream is
    closed, whatever way it ends (finished, failed, timed out, or the client went away), and never
    longer than the entry's `timeout` in all: a slow trickle cannot hold a slot past it."""

    def __init__(self, entry: ModelEntry, max_concurrent: int = 16) -> None:
        import httpx

        self.name, self.entry = entry.name, entry
        self.remote_model = entry.remote_model or entry.name
        self.timeout = entry.timeout
        headers = {}
        if entry.api_key_env:
            key = os.environ.get(entry.api_key_env)
            if not key:
                raise InputError(f"model {entry.name!r} needs an API key in ${entry.api_key_env}, which is not set",
                                 f"export {entry.api_key_env}=...")
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(base_url=entry.path.rstrip("/"), headers=headers,
                                   timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)))
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._count_lock = threading.Lock()
        self.in_flight = 0  # requests holding a slot now (the loom_remote_in_flight gauge)

    def info(self) -> Info:
        return Info(self.name, "openai", ["chat", "complete", "embed"], None,
                    self.entry.description or f"{self.remote_model} at {self.entry.path}", owned_by="remote")

    def _body(self, request: Request) -> tuple[str, dict]:
        s = request.sampling
        body = {"model": self.remote_model, "max_tokens": s.max_tokens, "temperature": s.temperature, "top_p": s.top_p,
                "stream": True, "stream_options": {"include_usage": True}}
        if s.stop:
            body["stop"] = s.stop
        if s.seed is not None:
            body["seed"] = s.seed
        if request.messages is not None:
            check_messages(request.messages, parts=True)
            if s.json_schema is not None:
                body["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": s.json_schema}}
            elif s.json_object:
                body["response_format"] = {"type": "json_object"}
            if request.tools is not None and request.tools.tools:  # the engine runs its own tool parser
                tools = request.tools
                body["tools"] = [t.openai() for t in tools.tools]
                body["tool_choice"] = tools.choice if tools.choice in ("auto", "required", "none") else {
                    "type": "function", "function": {"name": tools.choice}}
                body["parallel_tool_calls"] = tools.parallel
            return "/chat/completions", body | {"messages": request.messages}
        return "/completions", body | {"prompt": request.prompt}

    def stream(self, request: Request) -> Iterator[Chunk]:
        path, body = self._body(request)
        return self._events(path, body, chat=request.messages is not None)

    @contextlib.contextmanager
    def _slot(self, deadline: float):
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise Overloaded(f"all {self.name!r} slots stayed busy for {self.timeout:g} s", "retry later")
        with self._count_lock:
            self.in_flight += 1
        try:
            yield
        finally:
            with self._count_lock:
                self.in_flight -= 1
            self._slots.release()

    def _fail(self, what: str, error: Exception | None = None) -> RemoteError:
        import httpx

        where = f"remote engine {self.entry.path} for model {self.name!r}"
        if isinstance(error, httpx.TimeoutException) or what == "timeout":
            return RemoteTimeout(f"{where} did not answer within {self.timeout:g} s",
                                 "check the engine's load, or raise the model's timeout (loom models add ... --timeout)")
        return RemoteError(f"{where} {what}", "check that the engine is running, reachable and healthy")

    def _events(self, path: str, body: dict, chat: bool) -> Iterator[Chunk]:
        import httpx

        deadline = time.monotonic() + self.timeout
        finish, usage, done = None, {}, False
        with self._slot(deadline):
            try:
                with self.client.stream("POST", path, json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise _remote_error(response)
                    for data in _sse_data(response, deadline):
                        if data is None:
                            raise self._fail("timeout")
                        if data == "[DONE]":
                            done = True
                            break
                        try:
                            event = json.loads(data)
                            choices = event.get("choices") or []
                            usage = event.get("usage") or usage
                        except (json.JSONDecodeError, AttributeError):
                            raise self._fail(f"sent a malformed event: {data[:80]!r}") from None
                        for choice in choices:
                            delta = choice.get("delta") or {}
                            text = delta.get("content") if chat else choice.get("text")
                            finish = choice.get("finish_reason") or finish
                            calls = _call_deltas(delta.get("tool_calls")) if chat else None
                            if text or calls:
                                yield Chunk(text or "", tool_calls=calls)
            except httpx.HTTPError as e:
                raise self._fail(f"failed: {type(e).__name__}: {e}", e) from e
        if not done and finish is None:
            raise self._fail("ended the stream early (no finish_reason, no [DONE])")
        finish = finish if finish in ("length", "tool_calls") else "stop"
        yield Chunk("", finish, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))

    def embed(self, inputs: list[str] | list[list[int]], query: bool = False) -> Embeddings:
        import httpx

        with self._slot(time.monotonic() + self.timeout):
            try:
                response = self.client.post("/embeddings", json={"model": self.remote_model, "input": inputs,
                                                                 "encoding_format": "float"})
            except httpx.HTTPError as e:
                raise self._fail(f"failed: {type(e).__name__}: {e}", e) from e
        if response.status_code >= 400:
            raise _remote_error(response)
        try:
            payload = response.json()
            data = sorted(payload["data"], key=lambda d: d["index"])
            return Embeddings([d["embedding"] for d in data], (payload.get("usage") or {}).get("prompt_tokens", 0))
        except (ValueError, KeyError, TypeError) as e:
            raise self._fail(f"sent a malformed embeddings answer ({type(e).__name__})") from e

    def close(self) -> None:
        self.client.close()


def _call_deltas(wire: list | None) -> list[dict] | None:
    """OpenAI streamed tool-call deltas -> the internal ones (Chunk.tool_calls)."""
    out = []
    for d in wire or []:
        if not isinstance(d, dict) or not isinstance(d.get("index"), int):
            continue
        fn = d.get("function") or {}
        item = {"index": d["index"], "arguments": fn.get("arguments") or ""}
        if d.get("id") or fn.get("name"):
            item |= {"id": d.get("id") or f"call_{d['index']}", "name": fn.get("name") or ""}
        out.append(item)
    return out or None


def _remote_error(response) -> LoomError:
    try:
        message = response.json()["error"]["message"]
    except Exception:
        message = response.text[:300]
    if 400 <= response.status_code < 500 and response.status_code not in (401, 403, 429):
        return InputError(f"remote engine rejected the request: {message}", "fix the request parameters")
    return RemoteError(f"remote engine answered {response.status_code}: {message}", "check the engine, its key and its load")


def _sse_data(response, deadline: float) -> Iterator[str | None]:
    """The `data:` payloads of a server-sent-event body, read piece by piece so the deadline is checked
    after every network read (a trickle of bytes without newlines cannot outlast it); None = past it."""
    import codecs

    decoder, buffer = codecs.getincrementaldecoder("utf-8")(errors="replace"), ""
    for piece in response.iter_bytes():  # content-decoded (gzip proxies), one network read at a time
        if time.monotonic() > deadline:
            yield None
            return
        buffer += decoder.decode(piece)
        *lines, buffer = buffer.split("\n")
        for line in lines:
            if line.startswith("data:"):
                yield line[5:].strip()
    if buffer.startswith("data:"):
        yield buffer[5:].strip()
