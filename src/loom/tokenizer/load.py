"""Load a tokenizer by Loom name or folder path."""

from __future__ import annotations

from pathlib import Path

from loom import home
from loom.errors import InputError, NotFoundError


def resolve_tokenizer_dir(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.is_dir():
        candidate = p
    else:
        try:
            candidate = home.tokenizer_dir(name_or_path)
        except InputError:
            candidate = p
    if not (candidate / "tokenizer.json").is_file():
        root = home.tokenizers_dir()
        known = sorted(d.name for d in root.iterdir() if (d / "tokenizer.json").is_file()) if root.exists() else []
        raise NotFoundError(
            f"tokenizer {name_or_path!r} not found",
            f"train one with `loom tokenizer train --data DATASET --name {p.name}`; existing: {', '.join(known) or 'none'}",
        )
    return candidate


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_tokenizer_dir(name_or_path))
