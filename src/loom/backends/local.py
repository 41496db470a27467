"""Local transformers models (a Hugging Face folder, a Loom run, or a GGUF file dequantised by
transformers), served through the continuous-batching engine."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator

from loom.backends.base import Backend, Chunk, ContextTooLong, Info, Request, check_messages
from loom.model.decode import SequenceState, token_texts
from loom.errors import InputError
from loom.catalog import ModelEntry


class LocalLM(Backend):
    def __init__(self, entry: ModelEntry, max_batch: int = 16, max_queue: int = 64) -> None:
        from loom.backends.engine import BatchEngine
        from loom.model.generate import stop_token_ids
        from loom.model.load import load_model

        self.name, self.entry = entry.name, entry
        self.model, self.tokenizer = load_model(entry)
        self.context_length = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.engine = BatchEngine(self.model, max_batch=max_batch, max_queue=max_queue)
        self._vocab_texts: list[str] | None = None  # built on the first JSON-mode request (~1 s)

    def info(self) -> Info:
        caps = ["chat", "complete"] if self.tokenizer.chat_template else ["complete"]
        return Info(self.name, self.entry.backend, caps, self.context_length, self.entry.description)

    def encode(self, request: Request) -> list[int]:
        """Prompt token ids: chat messages through the model's own template, or the raw prompt."""
        tok = self.tokenizer
        if request.messages is not None:
            check_messages(request.messages)
            if not tok.chat_template:
                raise InputError(f"model {self.name!r} has no chat template", "use /v1/completions with a raw prompt, or a chat model")
            text = tok.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
            ids = tok.encode(text, add_special_tokens=False)
        elif isinstance(request.prompt, list):
            bad = [t for t in request.prompt if not 0 <= t < len(tok)]
            if bad:
                raise InputError(f"prompt token id {bad[0]} is outside the vocabulary (0..{len(tok) - 1})", "send ids from this model's tokenizer")
            ids = list(request.prompt)
        else:
            ids = tok.encode(request.prompt or "", add_special_tokens=False)
            if not ids and tok.bos_token_id is not None:
                ids = [tok.bos_token_id]
        if not ids:
            raise InputError("the prompt is empty", "send some text")
        if len(ids) >= self.context_length:
            raise ContextTooLong(
                f"the prompt is {len(ids)} tokens but model {self.name!r} has a context of {self.context_length} tokens",
                "shorten the prompt or the message history",
            )
        return ids

    def _state(self, request: Request) -> SequenceState:
        ids = self.encode(request)
        if request.sampling.json_object and self._vocab_texts is None:
            self._vocab_texts = token_texts(self.tokenizer)
        return SequenceState.from_sampling(self.tokenizer, ids, request.sampling, self.stop_ids,
                                           self.context_length, self._vocab_texts)

    def stream(self, request: Request) -> Iterator[Chunk]:
        inbox: queue.Queue = queue.Queue()
        cancel = self.engine.submit(self._state(request), inbox.put)
        return _drain_sync(inbox, cancel)

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        import anyio

        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        # Tokenising (and, on the first JSON-mode request, the ~1 s vocabulary table) stays off the event loop.
        state = await anyio.to_thread.run_sync(self._state, request)
        cancel = self.engine.submit(state, lambda item: loop.call_soon_threadsafe(inbox.put_nowait, item))
        try:
            while True:
                item = await inbox.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            cancel.set()  # no-op when finished; stops the row when the client went away

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def close(self) -> None:
        self.engine.close()


def _drain_sync(inbox: queue.Queue, cancel) -> Iterator[Chunk]:
    try:
        while True:
            item = inbox.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.finish_reason is not None:
                return
    finally:
        cancel.set()
