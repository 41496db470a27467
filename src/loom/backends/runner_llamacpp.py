"""The llama.cpp side of the batching engine: a GGUF file decoded by llama.cpp, several sequences in
one llama_batch.

llama.cpp keeps one KV cache for the context, shared by up to `max_batch` sequences (seq ids =
rows' slots; kv_unified). A step puts one token per active row in a single llama_batch, each with
its own position and seq id, and asks for logits at every row: one pass over the weights for all of
them. The prompts of sequences joining at the same step are packed together into batches of n_batch
tokens; a finished row's KV cells are freed with seq_rm.

The KV pool is shared, so admission reserves room: a sequence joins only when its prompt plus its
token budget (capped by the model's context) fits beside the reservations of the rows already
decoding, and it releases the reservation when it finishes. No row can run out of cache mid-answer;
a request that could never fit is refused when submitted.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

_PROMPT_CHUNK = 512  # prompt tokens per llama_decode call (n_batch)


def _lib():
    try:
        import llama_cpp
        from llama_cpp import _internals, _logger
    except ImportError as e:
        from loom.errors import InputError

        raise InputError("the llama.cpp engine needs llama-cpp-python",
                         "pip install llama-cpp-python==0.3.36 (builds llama.cpp, ~7 min once), or use --engine transformers") from e
    _logger.set_verbose(False)  # llama.cpp's load and graph logs: errors only
    return llama_cpp, _internals


def system_info() -> str:
    """The llama.cpp build's CPU features as it reports them ("CPU : SSE3 = 1 | AVX2 = 1 | ...")."""
    llama_cpp, _ = _lib()
    return llama_cpp.llama_print_system_info().decode(errors="replace").strip()


def widen_to_f16(source: str, target: str) -> None:
    """Rewrite a GGUF file with f16 weights (llama.cpp's own quantiser, dequantising whatever the file
    holds; norms stay f32). Each weight rounds once to f16 (relative error <= 2^-11), far below the
    8-bit activation quantisation it replaces."""
    llama_cpp, _ = _lib()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_F16
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(source.encode(), target.encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not rewrite {source} as f16")


class LlamaCppRunner:
    def __init__(self, path: str, max_batch: int = 16, pool_tokens: int = 16384, context: int = 4096,
                 threads: int | None = None, repack: bool = True) -> None:
        llama_cpp, internals = _lib()
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        # repack=False keeps weights in their file layout: no "extra buffer types" (the AMX and
        # interleaved-block copies some CPU kernels want). A native build on a CPU that lists AMX
        # repacks into AMX tiles and dies with SIGILL where the kernel forbids AMX; the self-test
        # (loom.backends.worker) retries with repacking off.
        params.use_extra_bufts = self.repack = repack
        self.model = internals.LlamaModel(path_model=path, params=params, verbose=False)
        self.context = min(context, self.model.n_ctx_train())  # tokens one sequence may hold
        # KV cells shared by all rows: room for every row at full context, up to pool_tokens (one row alone
        # always gets its whole context)
        self.pool = max(min(pool_tokens, max_batch * self.context), self.context)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = self.pool
        cparams.n_batch = cparams.n_ubatch = max(_PROMPT_CHUNK, max_batch)
        cparams.n_seq_max = max_batch
        cparams.kv_unified = True  # one pool, any row may use any cell
        cparams.n_threads = cparams.n_threads_batch = threads or os.cpu_count() or 1
        self.ctx = internals.LlamaContext(model=self.model, params=cparams, verbose=False)
        self.batch = internals.LlamaBatch(n_tokens=max(_PROMPT_CHUNK, max_batch), embd=0, n_seq_max=1, verbose=False)
        self.n_vocab = self.model.n_vocab()
        self._llama = llama_cpp
        self._free_slots = list(range(max_batch - 1, -1, -1))
        self._rows: list[int] = []  # the slot (llama.cpp seq id) of each active row, in batch order
        self.numpy = False  # logits as numpy rows instead of torch tensors (worker.py: the child never imports torch)

    @property
    def capacity(self) -> int:
        """KV cells all rows share: the engine admits a sequence only when its budget fits beside the others'."""
        return self.pool

    # -- engine protocol -------------------------------------------------------------------------
    def session(self):
        return contextlib.nullcontext()

    def prefill_many(self, prompts: list[list[int]]):
        """Prompts of the sequences joining together, packed into shared llama_batches of up to
        _PROMPT_CHUNK tokens (each token tagged with its sequence's slot): sixteen 35-token prompts
        take one pass over the weights instead of sixteen, ~1.5x faster for SmolLM2. Returns
        (last-token logits [V], slot) per prompt; on failure every slot taken here is given back."""
        slots = [self._free_slots.pop() for _ in prompts]
        results: list = [None] * len(prompts)
        tokens = [(p, pos) for p, ids in enumerate(prompts) for pos in range(len(ids))]  # prompt-major order
        try:
            for start in range(0, len(tokens), _PROMPT_CHUNK):
                chunk = tokens[start:start + _PROMPT_CHUNK]
                self.batch.reset()
                ends = []  # (batch index, prompt) of prompts whose last token is in this chunk
                for i, (p, pos) in enumerate(chunk):
                    last = pos == len(prompts[p]) - 1
                    self._put(i, prompts[p][pos], pos, slots[p], logits=last)
                    if last:
                        ends.append((i, p))
                self.batch.batch.n_tokens = len(chunk)
                self.ctx.decode(self.batch)
                if ends:
                    for (_, p), row in zip(ends, self._logits(i for i, _ in ends)):
                        results[p] = (row, slots[p])
        except BaseException:
            for slot in slots:
                self._release(slot)
            raise
        return results

    def admit(self, pending) -> None:
        self._rows.append(pending)

    def discard(self, pending) -> None:
        self._release(pending)

    def step(self, tokens: list[int], positions: list[int], into: np.ndarray | None = None):
        self.batch.reset()
        for i, (slot, tid, pos) in enumerate(zip(self._rows, tokens, positions)):
            self._put(i, tid, pos, slot, logits=True)
        self.batch.batch.n_tokens = len(tokens)
        self.ctx.decode(self.batch)
        return self._logits(range(len(tokens)), into)

    def keep(self, rows: list[int]) -> None:
        kept = [self._rows[r] for r in rows]
        for slot in set(self._rows) - set(kept):
            self._release(slot)
        self._rows = kept

    def reset(self) -> None:
        for slot in self._rows:
            self._release(slot)
        self._rows = []

    def close(self) -> None:
        """Free llama.cpp's batch, context and model now, in that order (left to the garbage collector
        at interpreter exit, the order is arbitrary and llama.cpp can abort the process)."""
        if self.batch is None:
            return
        self.reset()
        self.batch.close()
        self.ctx.close()
        self.model.close()
        self.batch = None

    # -- helpers ---------------------------------------------------------------------------------
    def _put(self, i: int, tid: int, pos: int, slot: int, logits: bool) -> None:
        b = self.batch.batch
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tid, pos, 1, logits
        b.seq_id[i][0] = slot

    def _logits(self, positions, into: np.ndarray | None = None):
        """Logits at these batch positions as [n, V] float32 rows, copied (llama.cpp reuses its buffer
        at the next decode): a torch tensor, or numpy rows when the runner serves a parent process
        (worker.py sets `numpy`; a step writes straight `into` the shared logits block)."""
        positions = list(positions)
        out = np.empty((len(positions), self.n_vocab), dtype=np.float32) if into is None else into[: len(positions)]
        for r, i in enumerate(positions):
            out[r] = np.ctypeslib.as_array(self._llama.llama_get_logits_ith(self.ctx.ctx, i), shape=(self.n_vocab,))
        if self.numpy:
            return out
        import torch

        return torch.from_numpy(out)

    def _release(self, slot: int) -> None:
        self.ctx.kv_cache_seq_rm(slot, -1, -1)
        self._free_slots.append(slot)
