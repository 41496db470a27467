"""Continuous batching: every decode step runs all active sequences as one batch, and new requests
join between steps instead of waiting for the batch to drain.

Decoding one token is memory-bound on CPU (every weight is read once per step), so a step for 16
sequences costs little more than a step for one: batching multiplies throughput.

The engine schedules; a runner computes. The runner holds the batch's KV cache and offers prefill_many
(the prompts of the sequences joining at one step), admit/discard (it joins the batch, or finished on its first
token), step (one token for every row) and keep (drop finished rows). runner_torch.TorchRunner runs
a transformers model; runner_llamacpp.LlamaCppRunner runs a GGUF file in llama.cpp with one KV
sequence per row. Sampling, stop strings and JSON mode stay here, in loom.model.decode, whatever
computes the logits: one decode path.

One worker thread owns the runner. Callers get chunks through callbacks (`submit`), so the async
server never parks a thread per request. Logits come back as a [V] row per sequence per step and
are sampled on the CPU.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

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
    reserved: int = 0  # cache cells this sequence may come to hold: prompt + token budget, within the context


class BatchEngine:
    def __init__(self, runner, max_batch: int = 16, max_queue: int = 64) -> None:
        self.runner = runner
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._waiting: collections.deque[_Seq] = collections.deque()
        self._active: list[_Seq] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.steps = 0  # decode steps run (for metrics and tests)
        self.max_rows_seen = 0  # largest batch so far (tests check that batching happened)
        self.cancelled = 0  # sequences dropped unfinished because their caller went away

    # -- caller side --------------------------------------------------------------------------
    def submit(self, state: SequenceState, emit: Callable[[Chunk | BaseException], None]) -> threading.Event:
        """Queue a sequence; `emit` gets chunks (the last has finish_reason) or one exception.
        Returns an Event: set it to cancel the sequence (its row is dropped at the next step)."""
        seq = _Seq(state, emit, reserved=min(len(state.prompt_ids) + state.cfg.max_new_tokens, state.context_limit))
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
            self._thread.join(timeout=30)  # let the runner finish its step before the interpreter exits
        if self._thread is None or not self._thread.is_alive():  # never free what a running step still uses
            self.runner.close()

    def run_inline(self, state: SequenceState):
        """Decode one sequence in the calling thread, yielding its chunks (`loom generate`): the same
        join/step/drop code as the worker, without a thread hop per token. Not for a shared engine."""
        out: list = []
        seq = _Seq(state, out.append)
        with self.runner.session():
            self._join([seq])
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
                while self._waiting and len(self._active) + len(joining) < self.max_batch and self._fits(joining):
                    joining.append(self._waiting.popleft())
            try:
                with self.runner.session():
                    self._join(joining)
                    self._drop_done()
                    if self._active:
                        self._step()
                        self._drop_done()
            except Exception as e:  # a model failure fails its batch, not the server
                log.exception("batch step failed")
                for seq in joining + self._active:
                    seq.emit(e)
                self._active = []
                self.runner.reset()

    def _fits(self, joining: list[_Seq]) -> bool:
        """Room in the runner's shared KV pool (if it has one) for the next waiting sequence, beside the
        active rows and those already joining: a row admitted never runs out of cache."""
        capacity = self.runner.capacity
        if capacity is None:
            return True
        held = sum(s.reserved for s in self._active) + sum(s.reserved for s in joining)
        return held + self._waiting[0].reserved <= capacity

    def _join(self, joining: list[_Seq]) -> None:
        """Prefill the joining sequences' prompts together, sample each one's first token, and make the
        unfinished ones batch rows."""
        joining = [seq for seq in joining if not seq.cancelled.is_set()]
        if not joining:
            return
        prefilled = self.runner.prefill_many([seq.state.prompt_ids for seq in joining])
        for k, (seq, (logits, pending)) in enumerate(zip(joining, prefilled)):
            seq.position = len(seq.state.prompt_ids)
            try:
                self._accept(seq, logits)
            except BaseException:
                for _, later in prefilled[k:]:  # not yet rows: give their KV slots back before the batch fails
                    self.runner.discard(later)
                raise
            if seq.state.finish_reason is not None:
                self.runner.discard(pending)  # finished on its first token: never enters the batch
                continue
            self.runner.admit(pending)
            self._active.append(seq)
        self.max_rows_seen = max(self.max_rows_seen, len(self._active))

    def _accept(self, seq: _Seq, logits) -> None:
        state = seq.state
        tid = state.choose(logits)
        piece = state.push(tid)
        seq.next_token = tid
        calls = state.take_tool_calls()
        if state.finish_reason is not None:
            seq.emit(Chunk(piece, state.finish_reason, len(state.prompt_ids), len(state.completion_ids),
                           logprobs=state.take_logprobs(), tool_calls=calls))
        elif piece or calls:
            seq.emit(Chunk(piece, logprobs=state.take_logprobs(), tool_calls=calls))

    def _step(self) -> None:
        rows = self._active
        logits = self.runner.step([s.next_token for s in rows], [s.position for s in rows])
        self.steps += 1
        for r, seq in enumerate(rows):
            seq.position += 1
            if not seq.cancelled.is_set():
                self._accept(seq, logits[r])

    def _drop_done(self) -> None:
        keep = [r for r, s in enumerate(self._active) if s.state.finish_reason is None and not s.cancelled.is_set()]
        if len(keep) == len(self._active):
            return
        self.cancelled += sum(1 for s in self._active if s.state.finish_reason is None and s.cancelled.is_set())
        self._active = [self._active[r] for r in keep]
        self.runner.keep(keep)
