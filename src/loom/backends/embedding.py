"""Sentence encoders (e.g. the bundled all-MiniLM-L6-v2): mean-pooled, L2-normalised vectors, the
sentence-transformers recipe for that model, computed with plain transformers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from loom.backends.base import Backend, Embeddings, Info
from loom.errors import InputError
from loom.catalog import ModelEntry

_BATCH = 32


class Encoder(Backend):
    def __init__(self, entry: ModelEntry) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.name, self.entry = entry.name, entry
        path = Path(entry.path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.max_length = _max_seq_length(path, self.model.config)
        self._lock = threading.Lock()  # one forward at a time: torch already uses every core

    def info(self) -> Info:
        return Info(self.name, "embedding", ["embed"], self.max_length, self.entry.description,)

    def embed(self, inputs: list[str] | list[list[int]], query: bool = False) -> Embeddings:
        import torch

        if not inputs:
            raise InputError("input is empty", "send a string or a non-empty list of strings")
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(inputs), _BATCH):
            batch = self._encode(inputs[start:start + _BATCH])
            tokens += int(batch["attention_mask"].sum())
            with self._lock, torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state  # [B, T, d]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vectors += torch.nn.functional.normalize(pooled, dim=-1).tolist()
        return Embeddings(vectors, tokens)

    def _encode(self, batch: list):
        tok = self.tokenizer
        if isinstance(batch[0], str):
            return tok(batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        for ids in batch:  # token ids of this model's own tokenizer (as LangChain sends them)
            bad = [t for t in ids if not 0 <= t < len(tok)]
            if bad:
                raise InputError(f"token id {bad[0]} is outside model {self.name!r}'s vocabulary (0..{len(tok) - 1})",
                                 "send text, or token ids from this model's tokenizer")
        # Wrap like the tokenizer wraps text: for BERT-style models, "" encodes to [CLS, SEP].
        empty = tok("")["input_ids"]
        head, tail = empty[:1], empty[1:]
        room = self.max_length - len(empty)
        features = [{"input_ids": head + list(ids[:room]) + tail} for ids in batch]
        return tok.pad(features, return_tensors="pt", return_attention_mask=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))


def _max_seq_length(path: Path, config) -> int:
    st = path / "sentence_bert_config.json"  # sentence-transformers' own limit (256 for MiniLM)
    if st.is_file():
        return int(json.loads(st.read_text(encoding="utf-8")).get("max_seq_length", 256))
    return min(512, getattr(config, "max_position_embeddings", 512))
