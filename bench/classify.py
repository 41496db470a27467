"""Benchmark text classification: Loom's bases against fastText and scikit-learn TF-IDF + logistic
regression, on the same stratified 80/20 split (seed 0) in the same run.

Datasets (`loom datasets`): zh-sentiment (Chinese reviews, pos/neg) and bbc-news (5 topics).
Targets (issue 3): zh-sentiment >= 0.90 and bbc-news >= 0.985 for Loom's best model, above both
peers; tf-idf inference >= 2,000 docs/s. Peers need `pip install fasttext-numpy2 scikit-learn`.

    python bench/classify.py [--datasets zh-sentiment,bbc-news] [--bases tfidf,minilm]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time

import numpy as np


def split(rows, seed=0):
    from sklearn.model_selection import train_test_split

    labels = [label for _, label in rows]
    return train_test_split(rows, test_size=0.2, random_state=seed, stratify=labels)


def peer_sklearn(train, test, chinese: bool) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3)) if chinese else TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    t0 = time.perf_counter()
    model = LogisticRegression(max_iter=2000).fit(vec.fit_transform([t for t, _ in train]), [y for _, y in train])
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = model.predict(vec.transform([t for t, _ in test]))
    return _score("sklearn tfidf+LR", pred, test, fit, time.perf_counter() - t0)


def peer_fasttext(train, test, chinese: bool) -> dict:
    import fasttext

    def prep(text: str) -> str:
        text = text.replace("\n", " ")
        return " ".join(re.sub(r"\s+", "", text)) if chinese else text.lower()  # characters as tokens for Chinese

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for text, label in train:
            f.write(f"__label__{label} {prep(text)}\n")
    t0 = time.perf_counter()
    model = fasttext.train_supervised(f.name, epoch=25, lr=0.5, wordNgrams=2, dim=100, minCount=1, verbose=0, thread=2)
    fit = time.perf_counter() - t0
    os.unlink(f.name)
    t0 = time.perf_counter()
    pred = [model.predict(prep(text))[0][0].removeprefix("__label__") for text, _ in test]
    return _score("fastText", np.array(pred), test, fit, time.perf_counter() - t0)


def loom_base(base: str, train, test, workdir: str, epochs: int) -> list[dict]:
    import csv

    from loom.classify.model import load_classifier
    from loom.classify.train import finetune_classify
    from loom.config import ClassifyConfig

    path = os.path.join(workdir, f"train-{base}.csv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(train)
    cfg = ClassifyConfig(base=base, epochs=epochs, max_len=128, batch_size=16, lr=5e-5, val_fraction=0.1)
    t0 = time.perf_counter()
    finetune_classify(path, f"bench-{base.replace('+', '-')}", cfg, overwrite=True, progress=True)
    fit = time.perf_counter() - t0
    clf = load_classifier(f"bench-{base.replace('+', '-')}")
    results = []
    for name, member in zip(getattr(clf, "member_names", []), getattr(clf, "members", [])):  # an ensemble's members alone
        t0 = time.perf_counter()
        probs = member.predict_proba([t for t, _ in test])
        results.append(_score(f"loom {name} (member)", np.array(clf.labels)[probs.argmax(axis=1)], test, float("nan"), time.perf_counter() - t0))
    t0 = time.perf_counter()
    probs = clf.predict_proba([t for t, _ in test])
    pred = np.array(clf.labels)[probs.argmax(axis=1)]
    return results + [_score(f"loom {base}", pred, test, fit, time.perf_counter() - t0)]


def _score(name, pred, test, fit, infer) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    gold = [y for _, y in test]
    return {"model": name, "accuracy": accuracy_score(gold, pred), "macro_f1": f1_score(gold, pred, average="macro"),
            "train_s": fit, "docs_per_s": len(test) / max(infer, 1e-9)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="zh-sentiment,bbc-news")
    ap.add_argument("--bases", default="tfidf,minilm,tfidf+e5",
                    help="Loom bases to train; a+b is a soft-voting ensemble, reported with each member alone "
                         "(minilm is skipped for Chinese: its vocabulary has no Chinese)")
    ap.add_argument("--epochs", type=int, default=2, help="neural bases: passes over the training data")
    args = ap.parse_args()
    os.environ.setdefault("LOOM_HOME", tempfile.mkdtemp(prefix="loom-bench-classify-"))
    from loom.datasets import get

    targets = {"zh-sentiment": 0.90, "bbc-news": 0.985}
    for name in args.datasets.split(","):
        rows = get(name).load()
        train, test = split(rows)
        chinese = name.startswith("zh")
        results = [peer_sklearn(train, test, chinese), peer_fasttext(train, test, chinese)]
        for base in args.bases.split(","):
            if "minilm" in base.split("+") and chinese:
                continue
            results += loom_base(base, train, test, os.environ["LOOM_HOME"], args.epochs)
        print(f"\n{name}: {len(train)} train / {len(test)} test (stratified 80/20, seed 0)")
        print(f"{'model':24s} {'accuracy':>9s} {'macro F1':>9s} {'train s':>8s} {'docs/s':>9s}")
        for r in results:
            print(f"{r['model']:24s} {r['accuracy']:9.4f} {r['macro_f1']:9.4f} {r['train_s']:8.1f} {r['docs_per_s']:9.0f}")
        best_loom = max((r for r in results if r["model"].startswith("loom")), key=lambda r: r["accuracy"])
        best_peer = max((r for r in results if not r["model"].startswith("loom")), key=lambda r: r["accuracy"])
        ok = best_loom["accuracy"] >= targets[name] and best_loom["accuracy"] > best_peer["accuracy"]
        print(f"target >= {targets[name]} and above both peers: {'PASS' if ok else 'FAIL'}")
        print(f"ratio best loom / best peer accuracy ({name}): {best_loom['accuracy'] / best_peer['accuracy']:.4f}")


if __name__ == "__main__":
    main()
