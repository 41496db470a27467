"""The one state folder, LOOM_HOME (default ~/.loom), and its layout.

    $LOOM_HOME/
      datasets/NAME/      documents.jsonl, report.json, train.bin, val.bin, meta.json
      tokenizers/NAME/    a Hugging Face tokenizer folder
      runs/NAME/          checkpoints/, model/ (final HF folder), metrics.jsonl, loss.png, config.yaml
      models.json         the model catalog (see loom.registry)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from loom.errors import InputError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def home() -> Path:
    """LOOM_HOME, created on first use."""
    root = Path(os.environ.get("LOOM_HOME") or Path.home() / ".loom").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_name(name: str, what: str = "name") -> str:
    """Names become folder names: keep them portable and free of path tricks."""
    if not _NAME_RE.match(name or ""):
        raise InputError(
            f"invalid {what} {name!r}",
            "use 1-100 characters from letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def datasets_dir() -> Path:
    return home() / "datasets"


def dataset_dir(name: str) -> Path:
    return datasets_dir() / check_name(name, "dataset name")


def tokenizers_dir() -> Path:
    return home() / "tokenizers"


def tokenizer_dir(name: str) -> Path:
    return tokenizers_dir() / check_name(name, "tokenizer name")


def runs_dir() -> Path:
    return home() / "runs"


def run_dir(name: str) -> Path:
    return runs_dir() / check_name(name, "run name")


def catalog_path() -> Path:
    return home() / "models.json"
