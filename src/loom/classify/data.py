"""Labelled text files (CSV / JSONL) -> (texts, labels), with the checks users need: missing
columns (listing the ones that exist), empty texts, a single label, undecodable bytes.

Multi-label rows hold several labels: a JSON list in .jsonl, or labels joined by `|` in .csv.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loom.data.sources import iter_json_objects
from loom.errors import InputError

SMALL_DATA = 50  # below this many examples no held-out estimate is trustworthy


@dataclass
class Labelled:
    texts: list[str]
    labels: list[list[str]]  # one list per row; single-label rows have exactly one

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def flat(self) -> list[str]:
        return [ls[0] for ls in self.labels]

    def label_names(self) -> list[str]:
        return sorted({label for ls in self.labels for label in ls})

    def subset(self, idx) -> "Labelled":
        return Labelled([self.texts[i] for i in idx], [self.labels[i] for i in idx])


def iter_rows(path: Path, text_col: str, label_col: str | None) -> Iterator[tuple[int, str, object]]:
    """(line number, text, raw label) rows, streamed; label is None when label_col is None."""
    if not path.is_file():
        raise InputError(f"file not found: {path}", "pass a .csv or .jsonl file with a text column")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".tsv"):
        raise InputError(f"unsupported file type {suffix or '(none)'!r}: {path}", "use .csv, .tsv or .jsonl")
    try:
        if suffix == ".jsonl":
            yield from _jsonl_rows(path, text_col, label_col)
        else:
            yield from _csv_rows(path, text_col, label_col, "\t" if suffix == ".tsv" else ",")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not valid UTF-8 ({e.reason} at byte {e.start} of a block)",
                         "convert it to UTF-8, e.g. `iconv -f GB18030 -t UTF-8 in.csv > out.csv`") from e


def _csv_rows(path: Path, text_col: str, label_col: str | None, delimiter: str):
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        columns = reader.fieldnames or []
        _check_columns(path, columns, text_col, label_col)
        for lineno, row in enumerate(reader, 2):
            yield lineno, row.get(text_col) or "", row.get(label_col) if label_col else None


def _jsonl_rows(path: Path, text_col: str, label_col: str | None):
    for lineno, row in iter_json_objects(path):
        if text_col not in row or (label_col and label_col not in row):
            _check_columns(path, list(row), text_col, label_col, f":{lineno}")
        text = row[text_col]
        yield lineno, text if isinstance(text, str) else ("" if text is None else str(text)), row.get(label_col) if label_col else None


def _check_columns(path: Path, columns: list[str], text_col: str, label_col: str | None, where: str = "") -> None:
    missing = [c for c in (text_col, label_col) if c and c not in columns]
    if missing:
        raise InputError(
            f"{path}{where} has no column {', '.join(map(repr, missing))}; columns present: {', '.join(columns) or '(none)'}",
            "choose the columns with --text-col and --label-col",
        )


def _parse_label(raw: object, multi_label: bool) -> list[str]:
    if isinstance(raw, list):
        return [str(x).strip() for x in raw if str(x).strip()]
    text = "" if raw is None else str(raw).strip()
    if multi_label:
        return [p.strip() for p in text.split("|") if p.strip()]
    return [text] if text else []


def read_labelled(path: str | Path, text_col: str = "text", label_col: str = "label", multi_label: bool = False) -> Labelled:
    """All rows of a training/evaluation file. Empty texts or labels are errors naming the line."""
    path = Path(path)
    texts, labels = [], []
    for lineno, text, raw in iter_rows(path, text_col, label_col):
        if not text.strip():
            raise InputError(f"{path}:{lineno} has an empty text", "remove that row or fill in its text")
        parsed = _parse_label(raw, multi_label)
        if not parsed:
            raise InputError(f"{path}:{lineno} has no label", "every row needs a label in --label-col")
        if not multi_label and isinstance(raw, list):
            raise InputError(f"{path}:{lineno} has a list of labels", "pass --multi-label for multi-label data")
        texts.append(text)
        labels.append(parsed)
    if not texts:
        raise InputError(f"{path} has no rows", "add rows with a text and a label")
    return Labelled(texts, labels)


def check_trainable(data: Labelled) -> list[str]:
    names = data.label_names()
    if len(names) < 2:
        raise InputError(f"only one label ({names[0]!r}) in the training data", "a classifier needs at least two labels")
    return names


def indicator(labels: list[list[str]], names: list[str]) -> np.ndarray:
    """Multi-label targets as a 0/1 matrix [rows, len(names)]."""
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros((len(labels), len(names)), dtype=np.int64)
    for row, ls in enumerate(labels):
        out[row, [index[label] for label in ls]] = 1
    return out


def label_counts(data: Labelled) -> Counter:
    return Counter(label for ls in data.labels for label in ls)
