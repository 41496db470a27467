"""Continuous batching for a transformers causal LM: every decode step runs all active sequences
as one batch, and new requests join between steps instead of waiting for the batch to drain.

Decoding one token is memory-bound on CPU (every weight is read once per step), so a step for 16
sequences costs little more than a step for one: batching multiplies throughput.

The batch's KV cache is left-padded: row r holds its real tokens at the right end of the
[B, heads, T, head_dim] tensors, and `mask` [B, T] marks real (1) vs padding (0) columns. Each row
keeps its own position ids (its count of real tokens), so padding never shifts RoPE positions.
A joining sequence is prefilled alone, then its cache is padded to the batch's length (or the batch
to its) and concatenated on the batch axis; finished or cancelled rows are dropped, and columns that
are padding in every remaining row are trimmed.

One worker thread owns the model. Callers get chunks through callbacks (`submit`), so the async
server never parks a thread per request. The engine runs wherever the model's weights are (see
loom.runtime): its tensors are made on that device, under the runtime's autocast; sampling reads the
last-position logits back to the CPU (one [V] row per sequence per step).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from loom.backends.base import Chunk, Overloaded
from loom.model.decode import SequenceState

log = logging.getLogger(__name__)


@dataclass
class _Seq:
    state: SequenceState
    emit: Callable[[Chunk | BaseException], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    next_token: int = -1  # sampled, not yet in the cache
    position: int = 0  # real tokens in the cache


class BatchEngine:
    def __init__(self, model, max_batch: int = 16, max_queue: int = 64, autocast=contextlib.nullcontext) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.autocast = autocast  # a context-manager factory: the runtime's autocast (bf16 on GPUs that have it)
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._waiting: collections.deque[_Seq] = collections.deque()
        self._active: list[_Seq] = []
        self._cond = threading.Condition()
        self._cache = None  # transformers DynamicCache holding the batch's rows
        self._mask: torch.Tensor | None = None  # [B, T] long
        self._thread: threading.Thread | None = None
        self._closed = False
        self.steps = 0  # decode steps run (for metrics and tests)
        self.max_rows_seen = 0  # largest batch so far (tests check that batching happened)
        self.cancelled = 0  # sequences dropped unfinished because their caller went away

    # -- caller side --------------------------------------------------------------------------
    def submit(self, state: SequenceState, emit: Callable[[Chunk | BaseException], None]) -> threading.Event:
        """Queue a sequence; `emit` gets chunks (the last has finish_reason) or one exception.
        Returns an Event: set it to cancel the sequence (its row is dropped at the next step)."""
        seq = _Seq(state, emit)
        with self._cond:
            if self._closed:
                raise Overloaded("the model is shutting down", "retry against a running server")
            if len(self._waiting) >= self.max_queue:
                raise Overloaded(f"server busy: {len(self._waiting)} requests already queued for this model",
                                 "retry after a short pause, or raise --max-queue")
            self._waiting.append(seq)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="loom-batch", daemon=True)
                self._thread.start()
            self._cond.notify()
        return seq.cancelled

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def active(self) -> int:
        return len(self._active)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)  # let torch finish its step before the interpreter exits

    def run_inline(self, state: SequenceState):
        """Decode one sequence in the calling thread, yielding its chunks (`loom generate`): the same
        join/step/drop code as the worker, without a thread hop per token. Not for a shared engine."""
        out: list = []
        seq = _Seq(state, out.append)
        with torch.inference_mode(), self.autocast():
            self._join(seq)
            self._drop_done()
            while True:
                yield from out
                out.clear()
                if not self._active:
                    return
                self._step()
                self._drop_done()

    # -- worker side --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._active and not self._closed:
                    self._cond.wait()
                if self._closed:
                    for seq in list(self._waiting) + self._active:
                        seq.emit(Overloaded("the model was unloaded", "retry the request"))
                    return
                joining = []
                while self._waiting and len(self._active) + len(joining) < self.max_batch:
                    joining.append(self._waiting.popleft())
            try:
                with torch.inference_mode(), self.autocast():
                    for seq in joining:
                        self._join(seq)
                    self._drop_done()
                    if self._active:
                        self._step()
                        self._drop_done()
            except Exception as e:  # a model failure fails its batch, not the server
                log.exception("batch step failed")
                for seq in joining + self._active:
                    seq.emit(e)
                self._active, self._cache, self._mask = [], None, None

    def _join(self, seq: _Seq) -> None:
        if seq.cancelled.is_set():
            return
        ids = seq.state.prompt_ids
        out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1)
        seq.position = len(ids)
        self._accept(seq, out.logits[0, -1])
        if seq.state.finish_reason is not None:
            return  # finished on its first token: never enters the batch
        self._merge(out.cache, len(ids))
        self._active.append(seq)
        self.max_rows_seen = max(self.max_rows_seen, len(self._active))

    def _accept(self, seq: _Seq, logits: torch.Tensor) -> None:
        state = seq.state
        tid = state.choose(logits)
        piece = state.push(tid)
        seq.next_token = tid
        if state.finish_reason is not None:
            seq.emit(Chunk(piece, state.finish_reason, len(state.prompt_ids), len(state.completion_ids)))
        elif piece:
            seq.emit(Chunk(piece))

    def _merge(self, cache, length: int) -> None:
        new_mask = torch.ones(1, length, dtype=torch.long, device=self.device)
        if self._cache is None:
            self._cache, self._mask = cache, new_mask
            return
        width = self._mask.shape[1]
        pad_new, pad_batch = max(0, width - length), max(0, length - width)
        for mine, theirs in zip(self._cache.layers, cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, pad_batch), _left_pad(theirs.keys, pad_new)], dim=0)
            mine.values = torch.cat([_left_pad(mine.values, pad_batch), _left_pad(theirs.values, pad_new)], dim=0)
        self._mask = torch.cat([_left_pad(self._mask, pad_batch), _left_pad(new_mask, pad_new)], dim=0)

    def _step(self) -> None:
        rows = self._active
        input_ids = torch.tensor([[s.next_token] for s in rows], device=self.device)
        positions = torch.tensor([[s.position] for s in rows], device=self.device)
        self._mask = torch.cat([self._mask, torch.ones(len(rows), 1, dtype=torch.long, device=self.device)], dim=1)
        if len(rows) == 1:  # one row holds no padding (joins and drops trim it): no mask or positions needed
            out = self.model(input_ids=input_ids, cache=self._cache, use_cache=True, logits_to_keep=1)
        else:
            out = self.model(input_ids=input_ids, attention_mask=self._mask, position_ids=positions,
                             cache=self._cache, use_cache=True, logits_to_keep=1)
        self._cache = out.cache
        self.steps += 1
        for r, seq in enumerate(rows):
            seq.position += 1
            if not seq.cancelled.is_set():
                self._accept(seq, out.logits[r, -1])

    def _drop_done(self) -> None:
        keep = [r for r, s in enumerate(self._active) if s.state.finish_reason is None and not s.cancelled.is_set()]
        if len(keep) == len(self._active):
            return
        self.cancelled += sum(1 for s in self._active if s.state.finish_reason is None and s.cancelled.is_set())
        self._active = [self._active[r] for r in keep]
        if not keep:
            self._cache, self._mask = None, None
            return
        index = torch.tensor(keep, device=self.device)
        mask = self._mask.index_select(0, index)
        first = int(mask.any(dim=0).nonzero()[0])  # leading columns that are padding in every row
        self._mask = mask[:, first:]
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, first:]
            layer.values = layer.values.index_select(0, index)[:, :, first:]


def _left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
    """Zero-pad n columns on the left of the sequence axis (-2 for KV [B,H,T,D], -1 for a mask [B,T])."""
    if n == 0:
        return t
    axis = -1 if t.dim() == 2 else -2
    shape = list(t.shape)
    shape[axis] = n
    return torch.cat([t.new_zeros(shape), t], dim=axis)
