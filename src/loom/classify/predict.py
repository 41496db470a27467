"""Batched prediction for texts and whole files (streamed: a million-row file is read, labelled
and written in chunks, never held in memory)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tqdm import tqdm

from loom import atomic
from loom.classify.data import iter_rows
from loom.classify.metrics import predictions
from loom.classify.model import load_classifier
from loom.errors import InputError


def label_of(clf, probs_row) -> str:
    pred = predictions(probs_row[None, :], clf.multi_label)[0]
    if clf.multi_label:
        return "|".join(clf.labels[i] for i in range(len(clf.labels)) if pred[i])
    return clf.labels[int(pred)]


def classify_texts(model: str, texts: list[str], explain: bool = False) -> list[dict]:
    clf = load_classifier(model)
    probs = clf.predict_proba(texts)
    results = []
    for text, row in zip(texts, probs):
        result = {"text": text, "label": label_of(clf, row), "probabilities": dict(zip(clf.labels, map(float, row)))}
        if explain:
            result["explanation"] = clf.explain(text, int(row.argmax()))
        results.append(result)
    return results


def write_rows(out: Path, rows, columns: list[str]) -> None:
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise InputError(f"unsupported output type {suffix or '(none)'!r}", "use an --out path ending in .csv or .jsonl")
    with atomic.file_writer(out, "w") as f:
        writer = csv.DictWriter(f, fieldnames=columns) if suffix == ".csv" else None
        if writer:
            writer.writeheader()
        for row in rows:
            if writer:
                writer.writerow(row)
            else:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def classify_file(model: str, path: Path, out: Path, text_col: str = "text", batch_size: int = 64) -> int:
    clf = load_classifier(model)
    columns = [text_col, "label"] + [f"p_{label}" for label in clf.labels]
    count = 0

    def labelled():
        nonlocal count
        batch: list[str] = []
        bar = tqdm(desc="classify", unit=" rows")
        for _, text, _ in iter_rows(path, text_col, None):
            batch.append(text)
            if len(batch) == batch_size:
                yield from _label_batch(clf, batch, text_col)
                count += len(batch)
                bar.update(len(batch))
                batch = []
        if batch:
            yield from _label_batch(clf, batch, text_col)
            count += len(batch)
            bar.update(len(batch))
        bar.close()

    write_rows(out, labelled(), columns)
    return count


def _label_batch(clf, texts: list[str], text_col: str):
    probs = clf.predict_proba(texts)
    for text, row in zip(texts, probs):
        yield {text_col: text, "label": label_of(clf, row)} | {f"p_{label}": round(float(p), 6) for label, p in zip(clf.labels, row)}
