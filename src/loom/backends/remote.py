"""A remote OpenAI-compatible engine (vLLM, Ollama, llama.cpp's server, another Loom) over httpx,
for models too big for this machine. Register it with

    loom models add big --backend openai http://gpu-host:8000/v1 --remote-model Qwen/Qwen2.5-7B-Instruct --api-key-env VLLM_KEY
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from loom.backends.base import Backend, Chunk, Embeddings, Info, Request, check_messages
from loom.errors import InputError, LoomError
from loom.registry import ModelEntry


class RemoteError(LoomError):
    """The remote engine failed or is unreachable (HTTP 502)."""


class Remote(Backend):
    def __init__(self, entry: ModelEntry, timeout: float = 600.0) -> None:
        import httpx

        self.name, self.entry = entry.name, entry
        self.remote_model = entry.remote_model or entry.name
        headers = {}
        if entry.api_key_env:
            key = os.environ.get(entry.api_key_env)
            if not key:
                raise InputError(f"model {entry.name!r} needs an API key in ${entry.api_key_env}, which is not set",
                                 f"export {entry.api_key_env}=...")
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(base_url=entry.path.rstrip("/"), headers=headers, timeout=timeout)

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
            check_messages(request.messages)
            if s.json_object:
                body["response_format"] = {"type": "json_object"}
            return "/chat/completions", body | {"messages": request.messages}
        return "/completions", body | {"prompt": request.prompt}

    def stream(self, request: Request) -> Iterator[Chunk]:
        path, body = self._body(request)
        return self._events(path, body, chat=request.messages is not None)

    def _events(self, path: str, body: dict, chat: bool) -> Iterator[Chunk]:
        import httpx

        finish, usage = None, {}
        try:
            with self.client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _remote_error(response)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                        finish = choice.get("finish_reason") or finish
                        if text:
                            yield Chunk(text)
        except httpx.HTTPError as e:
            raise RemoteError(f"remote engine {self.entry.path} for model {self.name!r} failed: {e}",
                              "check that the engine is running and reachable") from e
        yield Chunk("", "length" if finish == "length" else "stop", usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))

    def embed(self, inputs: list[str] | list[list[int]], query: bool = False) -> Embeddings:
        import httpx

        try:
            response = self.client.post("/embeddings", json={"model": self.remote_model, "input": inputs, "encoding_format": "float"})
        except httpx.HTTPError as e:
            raise RemoteError(f"remote engine {self.entry.path} failed: {e}", "check that it is running") from e
        if response.status_code >= 400:
            raise _remote_error(response)
        payload = response.json()
        data = sorted(payload["data"], key=lambda d: d["index"])
        return Embeddings([d["embedding"] for d in data], (payload.get("usage") or {}).get("prompt_tokens", 0))

    def close(self) -> None:
        self.client.close()


def _remote_error(response) -> LoomError:
    try:
        message = response.json()["error"]["message"]
    except Exception:
        message = response.text[:300]
    if 400 <= response.status_code < 500 and response.status_code not in (401, 403, 429):
        return InputError(f"remote engine rejected the request: {message}", "fix the request parameters")
    return RemoteError(f"remote engine answered {response.status_code}: {message}", "check the engine, its key and its load")
