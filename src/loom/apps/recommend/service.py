"""Answering with a trained recommender: top-k for a user or for a handful of liked items, similar
items for an item or a free text, each result with the reasons that drove it.

Who gets what:
- a user seen in training: the model's scores for that user, their items excluded;
- a list of liked items (a new user): item-to-item, the model scoring from those items alone;
- a user never seen, with no items: the most popular items (said so in the reason);
- a free text (similar): embedded with the content model's encoder, nearest item texts; this is also
  how an item with a text but no interactions yet gets found.
"""

from __future__ import annotations

import difflib
import threading

import numpy as np
from scipy import sparse

from loom import home
from loom.apps.recommend import models, store
from loom.apps.recommend.protocol import top_k
from loom.errors import InputError, NotFoundError

_loaded: dict[str, "Recommender"] = {}
_lock = threading.Lock()


def get(name: str) -> "Recommender":
    """A loaded recommender, kept for the process (reloaded when its files change)."""
    meta = home.recommender_dir(name) / "meta.json"
    stamp = meta.stat().st_mtime_ns if meta.is_file() else None
    with _lock:
        cached = _loaded.get(name)
        if cached is None or cached.stamp != stamp:
            cached = _loaded[name] = Recommender(store.load(name), stamp)
        return cached


class Recommender:
    def __init__(self, saved: store.Saved, stamp=None) -> None:
        self.saved, self.stamp, self.model, self.train = saved, stamp, saved.model, saved.train
        self.user_index = {u: i for i, u in enumerate(saved.users)}
        self.item_index = {it: i for i, it in enumerate(saved.items)}
        self.titles = saved.meta.get("titles") or {}
        self.popularity = np.asarray(self.train.sum(axis=0)).ravel()
        if isinstance(self.model, models.Hybrid):
            self.model.prepare()

    # -- public ---------------------------------------------------------------------------------
    def for_user(self, user: str | None = None, items: list[str] | None = None, k: int = 10,
                 exclude: list[str] | None = None, only: list[str] | None = None, explain: bool = True) -> dict:
        self._check_k(k)
        if user is not None and items:
            raise InputError("give a user or a list of items, not both", "send either user or items")
        if user is not None and user in self.user_index:
            row = self.user_index[user]
            history = self.train[row].indices
            scores = models.user_scores(self.model, np.array([row]), self.train)[0]
            route = "history"
        elif items:
            history = np.array([self._item(i) for i in items])
            scores = self.model.score(self._rows([history]))[0]
            route = "items"
        else:
            history = np.array([], dtype=np.int64)
            scores = self.popularity.astype(np.float32)
            route = "popular"
        picked = self._top(scores, k, set(history.tolist()), exclude, only)
        results = [self._result(j, scores[j]) for j in picked]
        if explain and route != "popular" and len(history) and picked:
            # each history item's own score for every pick: [len(history), k]
            contributions = np.asarray(self.model.item_scores(np.asarray(history), np.asarray(picked)))
            for r, column in zip(results, contributions.T):
                r["reasons"] = self._because(column, history)
                r["because"] = [f"because you liked {reason['title']}" for reason in r["reasons"]]
        if route == "popular":
            for r in results:
                r["reasons"] = [{"popular": r["popularity"]}]
                r["because"] = [f"popular: {r['popularity']} users"]
        return {"route": route, "user": user, "model": self.saved.name, "kind": self.model.kind, "results": results}

    def similar(self, item: str | None = None, text: str | None = None, k: int = 10) -> dict:
        self._check_k(k)
        if (item is None) == (text is None):
            raise InputError("give an item id or a text", "send item or text, one of them")
        if item is not None:
            j = self._item(item)
            scores = self.model.score(self._rows([[j]]))[0]
            picked = self._top(scores, k, {j}, None, None)
            return {"item": item, "results": [self._result(i, scores[i]) for i in picked]}
        vectors, encoder = self._content_vectors()
        query = models.embed_texts(encoder, [text])[0]
        scores = vectors @ query
        picked = self._top(scores, k, set(), None, None)
        return {"text": text, "encoder": encoder, "results": [self._result(i, scores[i]) for i in picked]}

    @property
    def has_texts(self) -> bool:
        try:
            self._content_vectors()
        except InputError:
            return False
        return True

    def browse(self, query: str = "", limit: int = 20) -> dict:
        """Users (most active first) and items (most popular first) whose id or title contains query."""
        q = query.strip().lower()
        activity = np.diff(self.train.indptr)
        users = [self.saved.users[u] for u in np.argsort(-activity, kind="stable") if q in self.saved.users[u].lower()][:limit]
        items = []
        for j in np.argsort(-self.popularity, kind="stable"):
            item = self.saved.items[j]
            title = self.titles.get(item, item)
            if q in item.lower() or q in title.lower():
                items.append({"item": item, "title": title, "popularity": int(self.popularity[j])})
                if len(items) >= limit:
                    break
        return {"name": self.saved.name, "kind": self.model.kind, "has_texts": self.has_texts,
                "users": [{"user": u, "interactions": int(activity[self.user_index[u]])} for u in users], "items": items}

    # -- helpers --------------------------------------------------------------------------------
    def _check_k(self, k: int) -> None:
        n = len(self.saved.items)
        if not 1 <= k <= n:
            raise InputError(f"k={k} but the catalogue has {n} items", f"ask for 1 to {n}")

    def _item(self, item: str) -> int:
        if item in self.item_index:
            return self.item_index[item]
        by_title = {t.lower(): i for i, t in self.titles.items()}
        if item.lower() in by_title and by_title[item.lower()] in self.item_index:
            return self.item_index[by_title[item.lower()]]
        close = difflib.get_close_matches(item, list(self.item_index) + list(self.titles.values()), n=3)
        raise NotFoundError(f"item {item!r} is not in recommender {self.saved.name!r}",
                            f"did you mean: {', '.join(close)}" if close else "use an item id from the training data")

    def _rows(self, histories) -> sparse.csr_matrix:
        rows = [i for i, h in enumerate(histories) for _ in h]
        cols = [j for h in histories for j in h]
        return sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(histories), len(self.saved.items)))

    def _top(self, scores: np.ndarray, k: int, seen: set[int], exclude, only) -> list[int]:
        scores = np.array(scores, dtype=np.float32)
        banned = list(seen) + [self._item(i) for i in exclude or []]
        scores[banned] = -np.inf
        if only:
            allowed = np.full(len(scores), -np.inf, dtype=np.float32)
            keep = [self._item(i) for i in only]
            allowed[keep] = 0.0
            scores = scores + allowed
        picked = top_k(scores[None, :], k)[0]
        return [int(j) for j in picked if np.isfinite(scores[j])]

    def _result(self, j: int, score: float) -> dict:
        item = self.saved.items[j]
        return {"item": item, "title": self.titles.get(item, item), "score": round(float(score), 6),
                "popularity": int(self.popularity[j])}

    def _because(self, contributions: np.ndarray, history: np.ndarray, n: int = 2) -> list[dict]:
        """The (at most n) history items whose own score for the pick is highest and positive."""
        order = np.argsort(-contributions)[:n]
        liked = [self.saved.items[history[o]] for o in order if contributions[o] > 0]
        return [{"liked": item, "title": self.titles.get(item, item)} for item in liked]

    def _content_vectors(self) -> tuple[np.ndarray, str]:
        parts = self.model.parts if isinstance(self.model, models.Hybrid) else [self.model]
        for part in parts:
            if isinstance(part, models.Content):
                return part.vectors, part.params["encoder"]
        raise InputError(f"recommender {self.saved.name!r} ({self.model.kind}) has no item texts to compare a text with",
                         "train a content or hybrid recommender with --items FILE")
