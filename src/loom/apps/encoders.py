"""The dense encoders apps share (knowledge bases, summaries): loaded once per process through the registry."""

from __future__ import annotations

import functools
import threading

_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _load(name: str):
    from loom import registry

    return registry.open_backend(name)


def encoder(name: str):
    """The embedding backend for 'minilm' or 'e5' (shared, thread-safe to call)."""
    with _lock:
        return _load(name)
