"""The recommenders. Each scores all items for a batch of users from their interaction rows:

    pop       how many users have each item (the floor every model must beat)
    itemknn   implicit's item-item cosine neighbours (K nearest): score = history @ S
    als       implicit's alternating least squares (matrix factorisation for implicit feedback)
    bpr       implicit's Bayesian personalised ranking
    ease      Steck's EASE (2019): a closed-form item-item model, B = I - P diag(1/diag(P)) with
              P = (X'X + lambda I)^-1, so score = history @ B; numpy, one n_items^2 solve
    content   item texts embedded by Loom's encoders (MiniLM for English, e5 for Chinese); a user is
              the mean of the items they have; recommends items nobody has touched yet
    hybrid    a weighted sum of standardised per-user scores of its parts (ease + als, + content when
              item texts exist), weights chosen on validation

A model's arrays (`state`) are plain numpy/scipy, saved by loom.apps.recommend.store.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

KINDS = ("pop", "itemknn", "als", "bpr", "ease", "content", "hybrid")
EASE_MAX_ITEMS = 20000  # the dense item x item solve: 20k items = 1.6 GB in float32


def _implicit():
    try:
        import implicit  # noqa: F401
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        from loom.errors import InputError

        raise InputError("als, bpr and itemknn need the implicit library", "pip install implicit==0.7.3") from e
    return threadpool_limits


class Pop:
    kind = "pop"

    def __init__(self, **params) -> None:
        self.params = params
        self.counts = None

    def fit(self, train: sparse.csr_matrix, texts=None) -> None:
        self.counts = np.asarray(train.sum(axis=0)).ravel().astype(np.float32)

    def score(self, history: sparse.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.counts, (history.shape[0], len(self.counts))).copy()

    def item_scores(self, items: np.ndarray, columns: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts[columns], (len(items), len(columns))).copy()

    def state(self) -> dict:
        return {"counts": self.counts}

    def load(self, state: dict) -> None:
        self.counts = state["counts"]


class ItemKNN:
    kind = "itemknn"

    def __init__(self, k: int = 100) -> None:
        self.params = {"k": k}
        self.similarity = None

    def fit(self, train, texts=None) -> None:
        _implicit()
        from implicit.nearest_neighbours import CosineRecommender

        import warnings

        from implicit.utils import ParameterWarning

        model = CosineRecommender(K=self.params["k"], num_threads=0)
        with warnings.catch_warnings():  # implicit's own normalisation hands itself a COO matrix and then warns about it
            warnings.simplefilter("ignore", ParameterWarning)
            model.fit(train, show_progress=False)
        self.similarity = model.similarity.tocsr().astype(np.float32)

    def score(self, history) -> np.ndarray:
        return np.asarray((history @ self.similarity).todense())

    def item_scores(self, items: np.ndarray, columns: np.ndarray) -> np.ndarray:
        return self.similarity[items][:, columns].toarray()

    def state(self) -> dict:
        return {"similarity": self.similarity}

    def load(self, state: dict) -> None:
        self.similarity = state["similarity"]


class _Factors:
    """ALS and BPR: user and item factor matrices. Users outside training (a list of liked items)
    are scored item-to-item through the item factors' cosine similarity."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    _unit: np.ndarray | None = None  # item factors scaled to length 1 (for item-to-item)

    @property
    def unit(self) -> np.ndarray:
        if self._unit is None:
            self._unit = self.item_factors / np.maximum(np.linalg.norm(self.item_factors, axis=1, keepdims=True), 1e-9)
        return self._unit

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T

    def score(self, history) -> np.ndarray:
        return np.asarray(history @ self.unit) @ self.unit.T

    def item_scores(self, items: np.ndarray, columns: np.ndarray) -> np.ndarray:
        return self.unit[items] @ self.unit[columns].T

    def state(self) -> dict:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def load(self, state: dict) -> None:
        self.user_factors, self.item_factors, self._unit = state["user_factors"], state["item_factors"], None


class ALS(_Factors):
    kind = "als"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0, iterations: int = 15, seed: int = 0) -> None:
        self.params = {"factors": factors, "regularization": regularization, "alpha": alpha, "iterations": iterations, "seed": seed}

    def fit(self, train, texts=None) -> None:
        limits = _implicit()
        from implicit.cpu.als import AlternatingLeastSquares

        p = self.params
        with limits(1, "blas"):  # implicit parallelises itself; threaded BLAS inside it only contends
            model = AlternatingLeastSquares(factors=p["factors"], regularization=p["regularization"], alpha=p["alpha"],
                                            iterations=p["iterations"], random_state=p["seed"])
            model.fit(train, show_progress=False)
        self.user_factors, self.item_factors, self._unit = np.asarray(model.user_factors), np.asarray(model.item_factors), None


class BPR(_Factors):
    kind = "bpr"

    def __init__(self, factors: int = 64, learning_rate: float = 0.05, regularization: float = 0.01, iterations: int = 100,
                 seed: int = 0) -> None:
        self.params = {"factors": factors, "learning_rate": learning_rate, "regularization": regularization,
                       "iterations": iterations, "seed": seed}

    def fit(self, train, texts=None) -> None:
        limits = _implicit()
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        p = self.params
        with limits(1, "blas"):
            model = BayesianPersonalizedRanking(factors=p["factors"], learning_rate=p["learning_rate"],
                                                regularization=p["regularization"], iterations=p["iterations"], random_state=p["seed"])
            model.fit(train, show_progress=False)
        self.user_factors, self.item_factors, self._unit = np.asarray(model.user_factors), np.asarray(model.item_factors), None


class EASE:
    kind = "ease"

    def __init__(self, lam: float = 500.0) -> None:
        self.params = {"lam": lam}
        self.weights = None

    def fit(self, train, texts=None) -> None:
        n = train.shape[1]
        if n > EASE_MAX_ITEMS:
            from loom.errors import InputError

            raise InputError(f"ease solves a dense {n} x {n} system (too large above {EASE_MAX_ITEMS} items)",
                             "use --model als or itemknn for catalogues this size")
        gram = np.asarray((train.T @ train).todense(), dtype=np.float64)
        gram[np.diag_indices(n)] += self.params["lam"]
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)  # column j divided by P_jj
        weights[np.diag_indices(n)] = 0.0  # an item may not predict itself
        self.weights = weights.astype(np.float32)

    def score(self, history) -> np.ndarray:
        return np.asarray(history @ self.weights)

    def item_scores(self, items: np.ndarray, columns: np.ndarray) -> np.ndarray:
        return self.weights[np.ix_(items, columns)]

    def state(self) -> dict:
        return {"weights": self.weights}

    def load(self, state: dict) -> None:
        self.weights = state["weights"]


class Content:
    """Items as unit vectors of their texts; a user as the mean of their items' vectors."""

    kind = "content"

    def __init__(self, encoder: str = "auto") -> None:
        self.params = {"encoder": encoder}
        self.vectors = None

    def fit(self, train, texts: list[str] | None = None) -> None:
        if not texts or not any(texts):
            from loom.errors import InputError

            raise InputError("the content model needs item texts", "pass --items FILE with a title/description column")
        self.params["encoder"] = self.params["encoder"] if self.params["encoder"] != "auto" else pick_encoder(texts)
        self.vectors = embed_texts(self.params["encoder"], texts)

    def score(self, history) -> np.ndarray:
        profile = np.asarray(history @ self.vectors)
        profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
        return profile @ self.vectors.T

    def item_scores(self, items: np.ndarray, columns: np.ndarray) -> np.ndarray:
        return self.vectors[items] @ self.vectors[columns].T

    def state(self) -> dict:
        return {"vectors": self.vectors}

    def load(self, state: dict) -> None:
        self.vectors = state["vectors"]


def pick_encoder(texts: list[str]) -> str:
    """e5 (multilingual) when a tenth of the item texts are Chinese, else MiniLM (English)."""
    from loom.text import has_cjk

    sample = [t for t in texts if t][:500]
    return "e5" if sum(has_cjk(t) for t in sample) >= max(1, len(sample) // 10) else "minilm"


_EMBEDDED: dict[tuple[str, int], np.ndarray] = {}  # (encoder, hash of the texts) -> vectors: tuning refits reuse them


def embed_texts(encoder: str, texts: list[str], batch: int = 64) -> np.ndarray:
    """Unit vectors [n, d] of texts (empty texts give zero vectors)."""
    key = (encoder, hash(tuple(texts)))
    if key not in _EMBEDDED:
        _EMBEDDED.clear()  # one catalogue at a time
        _EMBEDDED[key] = _embed(encoder, texts, batch)
    return _EMBEDDED[key].copy()


def _embed(encoder: str, texts: list[str], batch: int) -> np.ndarray:
    from loom.apps.encoders import encoder as load_encoder

    backend = load_encoder(encoder)
    out = None
    for start in range(0, len(texts), batch):
        chunk = [t or " " for t in texts[start:start + batch]]
        vectors = np.asarray(backend.embed(chunk).vectors, dtype=np.float32)
        out = vectors if out is None else np.concatenate([out, vectors])
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    out[[i for i, t in enumerate(texts) if not t]] = 0.0
    return out


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores, so parts on different scales can be added."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return (scores - mean) / np.maximum(std, 1e-9)


class Hybrid:
    kind = "hybrid"

    def __init__(self, parts: list | None = None, weights: list[float] | None = None) -> None:
        self.parts = parts or []
        self.weights = weights or []
        self.params = {}

    def _refresh_params(self) -> None:
        self.params = {"parts": [{"kind": p.kind, **p.params} for p in self.parts], "weights": list(self.weights)}

    def fit(self, train, texts=None) -> None:
        for part in self.parts:
            part.fit(train, texts)
        self._refresh_params()

    def score(self, history) -> np.ndarray:
        return sum(w * standardise(p.score(history)) for p, w in zip(self.parts, self.weights) if w)

    def score_users(self, users: np.ndarray, history) -> np.ndarray:
        return sum(w * standardise(user_scores(p, users, history)) for p, w in zip(self.parts, self.weights) if w)

    def item_scores(self, items: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """score(one item alone)[columns] without scoring whole rows: each part's row mean and spread
        per item are computed once (_row_stats), so a request touches only the columns it needs."""
        total = 0.0
        for i, (part, w) in enumerate(zip(self.parts, self.weights)):
            if w:
                mean, std = self._row_stats(i)
                total = total + w * (part.item_scores(items, columns) - mean[items, None]) / std[items, None]
        return total

    def prepare(self) -> None:
        """Compute the per-item row statistics now (a server does this at load, not on a first request)."""
        for i, w in enumerate(self.weights):
            if w:
                self._row_stats(i)

    def _row_stats(self, i: int, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of part i's scores for each item alone, over all items (as standardise sees them)."""
        cache = self.__dict__.setdefault("_stats", {})
        if i not in cache:
            part = self.parts[i]
            n = _n_items(part)
            everything = np.arange(n)
            rows = [part.item_scores(everything[s:s + batch], everything) for s in range(0, n, batch)]
            mean = np.concatenate([r.mean(axis=1) for r in rows])
            std = np.maximum(np.concatenate([r.std(axis=1) for r in rows]), 1e-9)
            cache[i] = (mean, std)
        return cache[i]

    def state(self) -> dict:
        return {f"{i}.{key}": value for i, p in enumerate(self.parts) for key, value in p.state().items()}

    def load(self, state: dict) -> None:
        for i, p in enumerate(self.parts):
            p.load({key.split(".", 1)[1]: v for key, v in state.items() if key.startswith(f"{i}.")})
        self.__dict__.pop("_stats", None)


def _n_items(model) -> int:
    for name in ("counts", "weights", "vectors", "item_factors", "similarity"):
        value = getattr(model, name, None)
        if value is not None:
            return value.shape[0]
    raise ValueError(f"{model.kind} is not fitted")


def user_scores(model, users: np.ndarray, history) -> np.ndarray:
    """Scores [len(users), n_items] of training users (rows of `history`): factor models use their
    learnt user vectors, the others the users' rows."""
    if isinstance(model, Hybrid):
        return model.score_users(users, history)
    if isinstance(model, _Factors):
        return model.score_users(users)
    return model.score(history[users])


def build(kind: str, **params):
    """A fresh model of this kind (hybrid: from its `parts` and `weights` params)."""
    classes = {"pop": Pop, "itemknn": ItemKNN, "als": ALS, "bpr": BPR, "ease": EASE, "content": Content}
    if kind == "hybrid":
        parts = [build(p["kind"], **{k: v for k, v in p.items() if k != "kind"}) for p in params.get("parts", [])]
        model = Hybrid(parts, list(params.get("weights", [])))
        model._refresh_params()
        return model
    if kind not in classes:
        from loom.errors import InputError

        raise InputError(f"unknown recommender {kind!r}", f"use one of: {', '.join(KINDS)}")
    return classes[kind](**params)
