"""Classification report: accuracy, macro/micro P/R/F1, per-class figures, confusion matrix (JSON
and PNG), and the worst errors. Figures come from scikit-learn, so they match it exactly."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from loom import atomic
from loom.classify.data import indicator


def predictions(probs: np.ndarray, multi_label: bool, threshold: float = 0.5) -> np.ndarray:
    """Single-label: argmax index per row. Multi-label: 0/1 indicator matrix."""
    return (probs >= threshold).astype(np.int64) if multi_label else probs.argmax(axis=1)


def report(texts: list[str], gold: list[list[str]], probs: np.ndarray, labels: list[str], multi_label: bool,
           worst: int = 10) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({g for gs in gold for g in gs if g not in index})
    if unknown:
        from loom.errors import InputError

        raise InputError(f"labels not seen at training time: {', '.join(map(repr, unknown))}",
                         f"the model knows: {', '.join(labels)}; fix the file or retrain with these labels")
    pred = predictions(probs, multi_label)
    y_true = indicator(gold, labels) if multi_label else np.array([index[gs[0]] for gs in gold])
    ids = list(range(len(labels)))
    out = {"examples": len(texts), "accuracy": float(accuracy_score(y_true, pred))}
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, pred, labels=ids, average=avg, zero_division=0)
        out |= {f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)}
    p, r, f, s = precision_recall_fscore_support(y_true, pred, labels=ids, average=None, zero_division=0)
    out["per_class"] = {labels[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])} for i in ids}
    if not multi_label:
        out["confusion_matrix"] = {"labels": labels, "matrix": confusion_matrix(y_true, pred, labels=ids).tolist()}
    out["worst_errors"] = _worst(texts, y_true, pred, probs, labels, multi_label, worst)
    return out


def _worst(texts, y_true, pred, probs, labels, multi_label, k) -> list[dict]:
    """Wrong predictions the model was most sure of."""
    if multi_label:
        wrong = np.flatnonzero((y_true != pred).any(axis=1))
        confidence = np.abs(probs[wrong] - 0.5).max(axis=1) if len(wrong) else np.array([])
    else:
        wrong = np.flatnonzero(y_true != pred)
        confidence = probs[wrong, pred[wrong]] if len(wrong) else np.array([])
    rows = []
    for i in wrong[np.argsort(-confidence)][:k]:
        if multi_label:
            gold = [labels[j] for j in np.flatnonzero(y_true[i])]
            got = [labels[j] for j in np.flatnonzero(pred[i])]
        else:
            gold, got = labels[y_true[i]], labels[pred[i]]
        rows.append({"text": texts[i][:300], "gold": gold, "predicted": got, "probability": float(probs[i].max())})
    return rows


def confusion_png(rep: dict, out_path: Path, title: str) -> None:
    from loom.plotting import pyplot

    plt = pyplot()

    labels, matrix = rep["confusion_matrix"]["labels"], np.array(rep["confusion_matrix"]["matrix"])
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    limit = matrix.max() / 2 if matrix.size else 0
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > limit else "black")
    ax.set_title(f"{title}  (accuracy {rep['accuracy']:.3f})")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic.write_bytes(out_path, buf.getvalue())
