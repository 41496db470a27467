"""Local transformers models (a Hugging Face folder, a Loom run, or a GGUF file dequantised by
transformers), run by the continuous-batching engine: the server, `loom chat` and `loom generate`
(through `generate` below, a one-row engine) all decode the same way."""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import AsyncIterator, Iterator

from dataclasses import dataclass

from loom import runtime
from loom.backends.base import Backend, Chunk, ContextTooLong, Info, Request, check_messages
from loom.backends.callgate import CallGate, gated, without_tools
from loom.catalog import ModelEntry
from loom.config import GenerateConfig
from loom.errors import InputError
from loom.model.decode import SequenceState, encode_prompt
from loom.model.tools import check_grammars, render_chat
from loom.tokenizer.chat import stop_token_ids


class BatchedLM(Backend):
    """A language model decoded by the batching engine, with a Hugging Face tokenizer for prompts and
    text: what the transformers engine (LocalLM) and the llama.cpp engine share. Subclasses set name,
    entry, tokenizer, context_length, stop_ids and engine."""

    def encode(self, request: Request) -> list[int]:
        """Prompt token ids: chat messages through the model's own template, or the raw prompt."""
        tok = self.tokenizer
        if request.messages is not None:
            check_messages(request.messages)
            if not tok.chat_template:
                raise InputError(f"model {self.name!r} has no chat template", "use /v1/completions with a raw prompt, or a chat model")
            ids = tok.encode(render_chat(tok, request.messages, request.tools), add_special_tokens=False)
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
        if request.tools is not None and request.tools.active:
            check_grammars(self.tokenizer, request.tools)  # first: a bad tool is named even if the prompt is too long
        ids = self.encode(request)
        return SequenceState.from_sampling(self.tokenizer, ids, request.sampling, self.stop_ids,
                                           self.context_length, request.tools)

    def stream(self, request: Request) -> Iterator[Chunk]:
        if not gated(request):
            return self._stream(request)
        return self._gated_stream(request)

    def _stream(self, request: Request) -> Iterator[Chunk]:
        inbox: queue.Queue = queue.Queue()
        cancel = self.engine.submit(self._state(request), inbox.put)
        return _drain_sync(inbox, cancel)

    def _gated_stream(self, request: Request) -> Iterator[Chunk]:
        gate = CallGate(request)
        for chunk in self._stream(request):
            out, rerun = gate.feed(chunk)
            yield from out
            if rerun:
                for again in self._stream(without_tools(request)):
                    yield gate.finish(again) if again.finish_reason is not None else again

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        if not gated(request):
            async for chunk in self._astream(request):
                yield chunk
            return
        gate = CallGate(request)
        async for chunk in self._astream(request):
            out, rerun = gate.feed(chunk)
            for piece in out:
                yield piece
            if rerun:
                async for again in self._astream(without_tools(request)):
                    yield gate.finish(again) if again.finish_reason is not None else again

    async def _astream(self, request: Request) -> AsyncIterator[Chunk]:
        import anyio

        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        # Tokenising (and, on the first structured-output request, llguidance's ~1 s tokenizer table) stays off the event loop.
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


class LocalLM(BatchedLM):
    def __init__(self, entry: ModelEntry, max_batch: int = 16, max_queue: int = 64, device: str = "auto") -> None:
        from loom.backends.engine import BatchEngine
        from loom.backends.runner_torch import TorchRunner
        from loom.model.load import load_model

        self.name, self.entry = entry.name, entry
        self.runtime = runtime.choose(device).apply()
        self.model, self.tokenizer = load_model(entry)
        self.model.to(self.runtime.device)
        self.context_length = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.engine = BatchEngine(TorchRunner(self.model, self.runtime.autocast), max_batch=max_batch, max_queue=max_queue)
        self.fallback_reason: str | None = None  # set by the registry when llama.cpp failed its self-test

    def info(self) -> Info:
        caps = ["chat", "complete"] if self.tokenizer.chat_template else ["complete"]
        return Info(self.name, self.entry.backend, caps, self.context_length, f"{self.entry.description} [{self.runtime.describe()}]".strip())

    def health(self) -> dict:
        out = {"engine": "transformers", "device": self.runtime.describe(), "process": "in-process"}
        return out | ({"fallback_from": "llama.cpp", "reason": self.fallback_reason} if self.fallback_reason else {})

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


@dataclass
class Generation:
    """One prompt through a one-row engine. Iterate for text pieces; afterwards finish_reason
    ('stop' | 'length') and the token counts are set."""

    model: object
    tokenizer: object
    state: SequenceState
    autocast: object = None

    @property
    def finish_reason(self) -> str | None:
        return self.state.finish_reason

    @property
    def completion_ids(self) -> list[int]:
        return self.state.completion_ids

    @property
    def prompt_tokens(self) -> int:
        return len(self.state.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.state.completion_ids)

    def __iter__(self) -> Iterator[str]:
        from loom.backends.engine import BatchEngine
        from loom.backends.runner_torch import TorchRunner

        engine = BatchEngine(TorchRunner(self.model, self.autocast or contextlib.nullcontext), max_batch=1, max_queue=1)
        for chunk in engine.run_inline(self.state):
            if chunk.text:
                yield chunk.text


def generate(model, tokenizer, prompt: str, cfg: GenerateConfig, chat: bool = False, system: str | None = None,
             rt: runtime.Runtime | None = None) -> Generation:
    """Stream one completion from a loaded model (the public `loom.generate`): same engine and
    sampling as the server. The model must already be on rt.device (default: where its weights are)."""
    ids = encode_prompt(tokenizer, prompt, chat, system)
    context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
    if not ids:
        raise InputError("empty prompt and the tokenizer has no BOS token", "pass a non-empty --prompt")
    if len(ids) >= context:
        raise InputError(f"prompt is {len(ids)} tokens; the model's context is {context}", "shorten the prompt")
    state = SequenceState(tokenizer, ids, cfg, stop_token_ids(tokenizer), context)
    return Generation(model, tokenizer, state, rt.autocast if rt else None)
