"""The classical baseline: word + character n-gram TF-IDF and a linear model. Trains in seconds,
predicts thousands of documents per second, and explains itself through its coefficients.

Features depend on the training corpus. Mostly-CJK corpora: jieba words plus character 1-3-grams
(characters carry most of the signal in Chinese). Other corpora: word 1-2-grams without English stop
words, as accurate on long English documents and 3-4x faster to predict than adding characters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from loom import atomic
from loom.classify.data import indicator
from loom.data.words import jieba_cut

KIND = "tfidf"
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Word tokens (module-level so the fitted pipeline pickles)."""
    if _CJK.search(text):
        return [w for w in jieba_cut(text.lower()) if w.strip()]
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """Words 1-2-grams with English stop words dropped first (bigrams then join content words)."""
    from loom.data.clean import EN_STOPWORDS

    tokens = [w for w in words(text) if w not in EN_STOPWORDS]
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def mostly_cjk(texts: list[str]) -> bool:
    return sum(1 for t in texts if _CJK.search(t)) >= len(texts) / 2


class TfidfClassifier:
    def __init__(self, labels: list[str], multi_label: bool = False, pipeline=None) -> None:
        self.labels = labels
        self.multi_label = multi_label
        self.pipeline = pipeline

    @classmethod
    def fit(cls, texts: list[str], labels: list[list[str]], names: list[str], multi_label: bool,
            class_weights: bool = True, c: float = 10.0) -> "TfidfClassifier":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import FeatureUnion, Pipeline

        if mostly_cjk(texts):
            features = FeatureUnion([
                ("words", TfidfVectorizer(analyzer=words, sublinear_tf=True)),
                ("chars", TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, lowercase=True)),
            ])
        else:
            features = FeatureUnion([("words", TfidfVectorizer(analyzer=content_words, sublinear_tf=True))])
        # C=10: light regularisation, so small training sets are fitted exactly.
        linear = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if class_weights else None)
        model = OneVsRestClassifier(linear) if multi_label else linear
        pipeline = Pipeline([("features", features), ("linear", model)])
        pipeline.fit(texts, indicator(labels, names) if multi_label else [ls[0] for ls in labels])
        return cls(names, multi_label, pipeline)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """[len(texts), len(labels)] probabilities (independent per label when multi-label)."""
        return np.asarray(self.pipeline.predict_proba(texts), dtype=np.float64)

    def explain(self, text: str, label_index: int, top: int = 10) -> list[tuple[str, float]]:
        """Features of `text` by contribution (tf-idf value x coefficient) to `label_index`'s score."""
        features = self.pipeline.named_steps["features"]
        linear = self.pipeline.named_steps["linear"]
        vec = features.transform([text]).tocsr()
        if self.multi_label:
            coef = linear.estimators_[label_index].coef_[0]
        elif linear.coef_.shape[0] == 1:  # binary: one row of coefficients, for labels[1]
            coef = linear.coef_[0] * (1 if label_index == 1 else -1)
        else:
            coef = linear.coef_[label_index]
        names = features.get_feature_names_out()
        contrib = {}
        for j, value in zip(vec.indices, vec.data):
            name = names[j].split("__", 1)[1]
            contrib[name] = contrib.get(name, 0.0) + float(value * coef[j])
        return sorted(contrib.items(), key=lambda kv: -abs(kv[1]))[:top]

    def save(self, out_dir: Path) -> None:
        import joblib

        out_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, out_dir / "model.joblib")
        atomic.write_json(out_dir / "loom_classifier.json", {"kind": KIND, "labels": self.labels, "multi_label": self.multi_label})

    @classmethod
    def load(cls, path: Path) -> "TfidfClassifier":
        import joblib

        meta = json.loads((path / "loom_classifier.json").read_text(encoding="utf-8"))
        return cls(meta["labels"], meta["multi_label"], joblib.load(path / "model.joblib"))

