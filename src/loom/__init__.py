"""Loom: raw text -> tokenizer -> pretrained model -> evaluation -> generation, offline.

Public API (heavy dependencies load lazily, inside the functions):
    prepare          loom.data.prepare.prepare          clean + dedup raw files into a dataset
    tokenize_dataset loom.tokenizer.shards.tokenize_dataset  pack a dataset into token shards
    train_tokenizer  loom.tokenizer.train.train_tokenizer
    pretrain         loom.train.pretrain.pretrain
    load_model       loom.model.load.load_model         (model, tokenizer) for a catalog entry
    generate         loom.backends.local.generate       streaming generation (the serving engine, one row)
    resolve_model    loom.catalog.resolve              name / run / folder / .gguf -> entry
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["prepare", "tokenize_dataset", "train_tokenizer", "pretrain", "load_model", "generate", "resolve_model", "LoomError"]

from loom.errors import LoomError


def __getattr__(name: str):
    import importlib

    targets = {
        "prepare": ("loom.data.prepare", "prepare"),
        "tokenize_dataset": ("loom.tokenizer.shards", "tokenize_dataset"),
        "train_tokenizer": ("loom.tokenizer.train", "train_tokenizer"),
        "pretrain": ("loom.train.pretrain", "pretrain"),
        "load_model": ("loom.model.load", "load_model"),
        "generate": ("loom.backends.local", "generate"),
        "resolve_model": ("loom.catalog", "resolve"),
    }
    if name not in targets:
        raise AttributeError(name)
    module, attr = targets[name]
    return getattr(importlib.import_module(module), attr)
