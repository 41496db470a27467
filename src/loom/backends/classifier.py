"""Fine-tuned classifiers (tf-idf or neural, from `loom finetune classify`) behind the contract."""

from __future__ import annotations

import threading

from loom.backends.base import Backend, Info
from loom.errors import InputError
from loom.catalog import ModelEntry


class Classifier(Backend):
    def __init__(self, entry: ModelEntry) -> None:
        from loom.classify.model import load_classifier

        self.name, self.entry = entry.name, entry
        self.clf = load_classifier(entry.path)
        self._lock = threading.Lock()

    def info(self) -> Info:
        return Info(self.name, self.entry.backend, ["classify"], None,
                    self.entry.description or f"labels: {', '.join(self.clf.labels)}")

    def classify(self, texts: list[str], explain: bool = False) -> list[dict]:
        from loom.classify.predict import label_of

        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise InputError("input must be a non-empty text or list of non-empty texts", "send e.g. {'input': ['great hotel']}")
        with self._lock:
            probs = self.clf.predict_proba(texts)
            results = [{"label": label_of(self.clf, row), "probabilities": dict(zip(self.clf.labels, map(float, row)))} for row in probs]
            if explain:
                for text, row, result in zip(texts, probs, results):
                    result["explanation"] = [[token, round(float(w), 6)] for token, w in self.clf.explain(text, int(row.argmax()))]
        return results
