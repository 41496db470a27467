"""The quickstart corpus, built at run time from installed packages (nothing copied into the repo):
the English and Chinese dialogue files of `chatterbot-corpus` (BSD-3-Clause), one document per
conversation, written as JSONL."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

from loom import atomic
from loom.errors import NotFoundError

LANGUAGES = ("english", "chinese")


def chatterbot_dir() -> Path:
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("the quickstart corpus needs the package chatterbot-corpus",
                            "pip install --no-deps chatterbot-corpus==1.3.3 (or run `make run`, which installs it)")
    return Path(spec.submodule_search_locations[0]) / "data"


def write_dialogue_corpus(out: Path) -> dict:
    """One JSONL line per conversation ("A\\nB\\n..."); returns counts per language."""
    counts = {}
    lines = []
    for lang in LANGUAGES:
        n = 0
        for f in sorted((chatterbot_dir() / lang).glob("*.yml")):
            doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            for convo in doc.get("conversations") or []:
                turns = [str(t).strip() for t in convo if t is not None and str(t).strip()]
                if len(turns) >= 2:
                    lines.append(json.dumps({"text": "\n".join(turns), "lang": lang}, ensure_ascii=False))
                    n += 1
        counts[lang] = n
    atomic.write_text(out, "\n".join(lines) + "\n")
    return counts
