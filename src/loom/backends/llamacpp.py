"""GGUF files through llama.cpp (llama-cpp-python), batched: the default engine for GGUF chat models
when llama.cpp is installed.

llama.cpp computes the logits (quantised matmuls, several sequences per llama_batch; see
runner_llamacpp); everything else is the same as the transformers engine: the Hugging Face
tokenizer read from the GGUF renders the chat template and decodes text, and loom.model.decode
samples (temperature, top-k/p, repetition penalty, seeds), cuts stop strings, holds back incomplete
UTF-8 and constrains JSON mode. So `n`, usage counts, cancellation, the queue bound and the
context-length check behave exactly as they do on the transformers engine.

    pip install 'llama-cpp-python==0.3.36'   # builds llama.cpp from source: ~7 min on 2 cores, once
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import time
import weakref
from pathlib import Path

from loom.backends.base import Info
from loom.backends.local import BatchedLM
from loom.catalog import ModelEntry
from loom.tokenizer.chat import stop_token_ids

log = logging.getLogger(__name__)

POOL_TOKENS = 16384  # most KV cells shared by all rows (f16 K and V: qwen2.5-0.5b 12 KB a cell, ~190 MB)


def available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def weights_file(entry: ModelEntry) -> str:
    """The GGUF file llama.cpp runs for this entry: its own file, or for llama_cpp_weights="f16" a copy
    widened to f16 by llama.cpp's quantiser, written once under cache/gguf-f16/ (temporary sibling,
    then rename: a crash leaves no half file)."""
    if entry.llama_cpp_weights == "as-is":
        return entry.path
    from loom import atomic, home
    from loom.backends.runner_llamacpp import widen_to_f16
    from loom.model.load import gguf_cache_name

    source = Path(entry.path)
    target = home.cache_dir("gguf-f16") / f"{gguf_cache_name(source)}.gguf"
    if not target.is_file():
        with atomic.file_writer(target, "wb") as f:
            widen_to_f16(str(source), f.name)  # llama.cpp rewrites the temporary file in place
    return str(target)


class LlamaCppLM(BatchedLM):
    """isolate=True (the default) runs llama.cpp in a supervised child process (backends.worker): a
    native crash fails the requests in flight with a 503 and the engine restarts; the server lives.
    isolate=False loads it in this process (benchmarks compare the two)."""

    def __init__(self, entry: ModelEntry, max_batch: int = 16, max_queue: int = 64, context: int = 4096,
                 threads: int | None = None, isolate: bool = True) -> None:
        from loom.backends.engine import BatchEngine
        from loom.model.load import load_tokenizer

        start = time.perf_counter()
        self.name, self.entry = entry.name, entry
        path = weights_file(entry)
        if isolate:
            runner, self.self_test = start_isolated(entry.name, path, max_batch, context, threads)
            self.context_length = runner.context
        else:
            from loom.backends.runner_llamacpp import LlamaCppRunner

            runner = LlamaCppRunner(path, max_batch=max_batch, pool_tokens=POOL_TOKENS, context=context, threads=threads)
            self.self_test, self.context_length = "not run (in-process engine)", runner.context
        self.runner = runner
        self.tokenizer = load_tokenizer(entry)
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.engine = BatchEngine(runner, max_batch=max_batch, max_queue=max_queue)
        self.load_seconds = time.perf_counter() - start
        # Stop the worker and free llama.cpp before the interpreter tears down (see LlamaCppRunner.close).
        engine = weakref.ref(self.engine)
        atexit.register(lambda: engine() is not None and engine().close())

    def info(self) -> Info:
        caps = ["chat", "complete"] if self.tokenizer.chat_template else ["complete"]
        return Info(self.name, "gguf (llama.cpp)", caps, self.context_length, self.entry.description)

    def health(self) -> dict:
        out = {"engine": "llama.cpp", "self_test": self.self_test}
        status = getattr(self.runner, "status", None)
        return out | (status() if status else {"process": "in-process"})


def start_isolated(model: str, path: str, max_batch: int, context: int, threads: int | None):
    """An EngineProcess that passed its start-up self-test, and a line saying how. Tried in order until
    one passes: the fastest llama.cpp build this CPU can run (llama_builds) with weight repacking on
    (llama.cpp's default), then off, then the portable build the same two ways. Raises EngineFailed
    when none passes (the registry then falls back to the transformers engine)."""
    from loom.backends.llama_builds import usable
    from loom.backends.worker import EngineFailed, EngineProcess, Spec

    failures = []
    for build in usable():
        for repack in (True, False):
            spec = Spec(path, max_batch=max_batch, pool_tokens=POOL_TOKENS, context=context, threads=threads,
                        repack=repack, lib=build.lib)
            try:
                runner = EngineProcess(spec, model)
            except EngineFailed as e:
                failures.append(f"{build.name} build, repacking {'on' if repack else 'off'}: {e.message}")
                log.warning("model %s: llama.cpp failed its self-test on the %s build with weight repacking %s (%s); "
                            "%s", model, build.name, "on" if repack else "off", e.message,
                            "retrying with repacking off" if repack else "trying the next build")
                continue
            note = f"passed on the {build.name} build in {runner.ready.probe_ms:.0f} ms"
            if failures:
                note += f", weight repacking {'on' if repack else 'off'}, after: {'; '.join(failures)}"
                log.warning("model %s: llama.cpp self-test %s", model, note)
            return runner, note
    raise EngineFailed(f"model {model!r}: llama.cpp failed its self-test ({'; '.join(failures)})",
                       "run `loom doctor`; serve with --engine transformers")
