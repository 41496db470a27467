"""`loom eval classify`: score a classifier on a labelled file; report.json + confusion.png under
$LOOM_HOME/evals/MODEL--FILE/."""

from __future__ import annotations

import time
from pathlib import Path

from loom import atomic, home
from loom.classify import metrics
from loom.classify.data import read_labelled
from loom.classify.model import load_classifier


def evaluate_classifier(model: str, data: str, text_col: str = "text", label_col: str = "label") -> dict:
    clf = load_classifier(model)
    labelled = read_labelled(data, text_col, label_col, clf.multi_label)
    t0 = time.perf_counter()
    probs = clf.predict_proba(labelled.texts)
    seconds = time.perf_counter() - t0
    rep = metrics.report(labelled.texts, labelled.labels, probs, clf.labels, clf.multi_label)
    out_dir = home.eval_dir(f"{Path(model).name}--{Path(data).stem}")
    rep = {"model": model, "data": str(data)} | rep | {"seconds": round(seconds, 3),
                                                      "docs_per_s": round(len(labelled) / max(seconds, 1e-9), 1),
                                                      "report_dir": str(out_dir)}
    atomic.write_json(out_dir / "report.json", rep)
    if "confusion_matrix" in rep:
        metrics.confusion_png(rep, out_dir / "confusion.png", f"{Path(model).name} on {Path(data).name}")
    return rep
