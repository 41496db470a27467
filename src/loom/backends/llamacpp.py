"""GGUF files through llama.cpp (the optional `llama-cpp-python` extra): the fastest single-stream
decode on CPU (quantised matmuls), but one request at a time. Use the transformers engine
(`--engine transformers`) when many clients share the model and batching matters more.

    pip install 'llama-cpp-python==0.3.36'   # builds llama.cpp from source: ~7-12 min on 2 cores
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

from loom.backends.base import Backend, Chunk, ContextTooLong, Info, Request, check_messages
from loom.errors import InputError
from loom.catalog import ModelEntry


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


class LlamaCpp(Backend):
    def __init__(self, entry: ModelEntry, n_ctx: int = 4096, threads: int | None = None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise InputError("the llama.cpp engine needs llama-cpp-python", "pip install llama-cpp-python==0.3.36, or use --engine transformers") from e
        self.name, self.entry = entry.name, entry
        self.llm = Llama(model_path=entry.path, n_ctx=n_ctx, n_threads=threads or os.cpu_count(), verbose=False)
        self.context_length = self.llm.n_ctx()
        self._lock = threading.Lock()  # llama.cpp's context serves one sequence at a time

    def info(self) -> Info:
        return Info(self.name, "gguf (llama.cpp)", ["chat", "complete"], self.context_length, self.entry.description)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, request: Request) -> Iterator[Chunk]:
        s = request.sampling
        kwargs = dict(max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p, stop=s.stop or None,
                      seed=s.seed, stream=True)
        if request.messages is not None:
            check_messages(request.messages)
            prompt_tokens = self._check_length(self._chat_prompt_tokens(request.messages))
            fmt = {"type": "json_object"} if s.json_object else None
            return self._run(lambda: self.llm.create_chat_completion(request.messages, response_format=fmt, **kwargs),
                             prompt_tokens, chat=True)
        prompt = request.prompt
        if isinstance(prompt, list):
            prompt_tokens = self._check_length(len(prompt))
        else:
            prompt_tokens = self._check_length(self.count_tokens(prompt or ""))
        return self._run(lambda: self.llm.create_completion(prompt, **kwargs), prompt_tokens, chat=False)

    def _chat_prompt_tokens(self, messages: list[dict]) -> int:
        # An estimate for the length check; llama.cpp applies the GGUF's own template itself.
        return sum(self.count_tokens(m["content"]) + 4 for m in messages)

    def _check_length(self, n: int) -> int:
        if n >= self.context_length:
            raise ContextTooLong(f"the prompt is {n} tokens but model {self.name!r} has a context of {self.context_length} tokens",
                                 "shorten the prompt or the message history")
        return n

    def _run(self, start, prompt_tokens: int, chat: bool) -> Iterator[Chunk]:
        with self._lock:
            finish, produced = "stop", 0
            for event in start():
                choice = event["choices"][0]
                text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                finish = choice.get("finish_reason") or finish
                if text:
                    produced += 1  # llama-cpp-python streams one token per event
                    yield Chunk(text)
            yield Chunk("", "length" if finish == "length" else "stop", prompt_tokens, produced)
