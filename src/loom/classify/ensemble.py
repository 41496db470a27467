"""Soft-voting ensembles: `--base tfidf+e5` trains each member on the same split and averages their
probabilities with weights chosen on the validation split.

Members err differently: tf-idf keys on exact words and n-grams, a fine-tuned encoder on meaning and
context, so their weighted average is usually better than either. The weights minimise validation
log-loss (a proper score, smoother than accuracy on a few hundred examples) over a grid on the
simplex, in steps of 0.05. Without a validation split the members count equally.

Saved layout: the ensemble folder holds `loom_classifier.json` (kind, labels, members with weights)
and one sub-folder per member in its own format (tf-idf joblib or a standard HF folder).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from loom import atomic

KIND = "ensemble"
GRID_STEPS = 20  # weight resolution 1/20 = 0.05


class EnsembleClassifier:
    def __init__(self, members: list, weights: list[float], names: list[str], labels: list[str], multi_label: bool) -> None:
        self.members, self.weights, self.member_names = members, weights, names
        self.labels, self.multi_label = labels, multi_label

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        for member, weight in zip(self.members, self.weights):
            if weight > 0:
                out += weight * member.predict_proba(texts)
        return out

    def explain(self, text: str, label_index: int, top: int = 10) -> list[tuple[str, float]]:
        """Occlusion on the ensemble's own probabilities (members' token units differ)."""
        from loom.classify.neural import occlusion

        return occlusion(self.predict_proba, text, label_index, top)

    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        entries = []
        for i, (member, name, weight) in enumerate(zip(self.members, self.member_names, self.weights)):
            sub = f"member-{i}-{name}"
            member.save(out_dir / sub)
            entries.append({"base": name, "path": sub, "weight": weight})
        atomic.write_json(out_dir / "loom_classifier.json", {"kind": KIND, "labels": self.labels,
                                                            "multi_label": self.multi_label, "members": entries})

    @classmethod
    def load(cls, path: Path, load_folder) -> "EnsembleClassifier":
        """load_folder(path) loads one member (loom.classify.model.load_folder, passed in: that module
        dispatches to this one, so importing it back would close a circle)."""
        meta = json.loads((path / "loom_classifier.json").read_text(encoding="utf-8"))
        members = [load_folder(path / m["path"]) for m in meta["members"]]
        return cls(members, [m["weight"] for m in meta["members"]], [m["base"] for m in meta["members"]],
                   meta["labels"], meta["multi_label"])


def choose_weights(member_probs: list[np.ndarray], gold: np.ndarray, multi_label: bool) -> list[float]:
    """Grid search on the simplex for the mix with the lowest log-loss on `gold`.

    member_probs: one [n, labels] array per member; gold: [n] class indices, or an [n, labels] 0/1
    indicator when multi-label (then the loss is the mean binary cross-entropy)."""
    eps = 1e-7
    best, best_loss = None, float("inf")
    k = len(member_probs)
    for parts in itertools.product(range(GRID_STEPS + 1), repeat=k - 1):
        if sum(parts) > GRID_STEPS:
            continue
        weights = [p / GRID_STEPS for p in parts] + [(GRID_STEPS - sum(parts)) / GRID_STEPS]
        mix = np.clip(sum(w * p for w, p in zip(weights, member_probs)), eps, 1 - eps)
        if multi_label:
            loss = -np.mean(gold * np.log(mix) + (1 - gold) * np.log(1 - mix))
        else:
            loss = -np.mean(np.log(mix[np.arange(len(gold)), gold]))
        if loss < best_loss - 1e-12:
            best, best_loss = weights, loss
    return [round(w, 4) for w in best]
