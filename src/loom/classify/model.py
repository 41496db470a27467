"""Load a fine-tuned classifier by run name, registered name or folder."""

from __future__ import annotations

from pathlib import Path

from loom import registry
from loom.errors import InputError


def load_classifier(name_or_path: str):
    """A TfidfClassifier or NeuralClassifier; both offer .labels, .multi_label, predict_proba, explain."""
    entry = registry.resolve(name_or_path)
    path = Path(entry.path)
    if entry.task != "classify" or not (path / "loom_classifier.json").is_file():
        raise InputError(f"{name_or_path!r} is not a classifier (it is a {entry.task} model)",
                         "train one with `loom finetune classify --data FILE --name NAME`")
    if entry.backend == "tfidf":
        from loom.classify.tfidf import TfidfClassifier

        return TfidfClassifier.load(path)
    from loom.classify.neural import NeuralClassifier

    return NeuralClassifier.load(path)
