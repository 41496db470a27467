"""Load a fine-tuned classifier by run name, registered name or folder."""

from __future__ import annotations

import json
from pathlib import Path

from loom import catalog
from loom.errors import InputError


def load_classifier(name_or_path: str):
    """A TfidfClassifier, NeuralClassifier or EnsembleClassifier; all offer .labels, .multi_label,
    predict_proba and explain."""
    entry = catalog.resolve(name_or_path)
    path = Path(entry.path)
    if entry.task != "classify" or not (path / "loom_classifier.json").is_file():
        raise InputError(f"{name_or_path!r} is not a classifier (it is a {entry.task} model)",
                         "train one with `loom finetune classify --data FILE --name NAME`")
    return load_folder(path)


def load_folder(path: Path):
    """The classifier saved in `path`, by the kind its loom_classifier.json names."""
    kind = json.loads((path / "loom_classifier.json").read_text(encoding="utf-8"))["kind"]
    if kind == "tfidf":
        from loom.classify.tfidf import TfidfClassifier

        return TfidfClassifier.load(path)
    if kind == "ensemble":
        from loom.classify.ensemble import EnsembleClassifier

        return EnsembleClassifier.load(path, load_folder)
    from loom.classify.neural import NeuralClassifier

    return NeuralClassifier.load(path)
