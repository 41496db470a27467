"""Fitting with a little tuning, and the protocol-stamped evaluation.

Every kind has a small grid (six settings at most). fit_tuned carves a validation split out of the
data it is given (per user 90/10, seed + 1), keeps the setting with the best nDCG@k there, and refits
that setting on all of the data. evaluate_kind applies the protocol's 80/20 split, runs fit_tuned on
the 80% only (the held-out 20% never steers a choice) and scores the 20%, next to Pop and item-kNN
fitted the same way on the same split.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from loom.apps.recommend import models
from loom.apps.recommend.data import Interactions, Items
from loom.apps.recommend.protocol import Protocol, evaluate, held_out, split

GRIDS: dict[str, list[dict]] = {
    "pop": [{}],
    "itemknn": [{"k": k} for k in (100, 200, 400, 800)],
    # ALS has the most knobs, so the largest grid: regularisation matters most on MovieLens-100k
    # (validation nDCG@10 0.19 at 0.05 vs 0.20 at 10; alpha 1 vs 4 changed it by < 0.002)
    "als": [{"factors": f, "regularization": r} for f in (32, 64, 128) for r in (1.0, 10.0)],
    "bpr": [{"factors": f, "learning_rate": lr} for f in (64, 128) for lr in (0.01, 0.05)],
    "ease": [{"lam": lam} for lam in (100.0, 250.0, 500.0, 1000.0)],
    "content": [{}],
}
BASELINES = ("pop", "itemknn")


def with_items(data: Interactions, items: Items | None) -> tuple[Interactions, list[str]]:
    """Interactions whose item index also covers items known only from the item file (so the content
    model can recommend them), and each item's text in index order ('' when unknown)."""
    if items is None:
        return data, [""] * len(data.items)
    known = set(data.items)
    extra = [i for i in items.ids if i not in known]
    full = replace(data, items=data.items + extra, report={**data.report, "items_without_interactions": len(extra)})
    return full, [items.texts.get(i, "") for i in full.items]


def _subset(data: Interactions, keep: np.ndarray) -> Interactions:
    ratings = data.ratings[keep] if data.ratings is not None else None
    return Interactions(data.users, data.items, data.rows[keep], data.cols[keep], ratings, data.report)


def _score(model, matrix, protocol: Protocol, users, relevant) -> dict:
    return evaluate(lambda u: models.user_scores(model, u, matrix), matrix, users, relevant, protocol)


def _hybrid_parts(texts: list[str]) -> list[str]:
    return ["ease", "als", "content"] if any(texts) else ["ease", "als"]


def _simplex(parts: int, steps: int = 10) -> list[tuple[float, ...]]:
    """Every weight vector of `parts` non-negative multiples of 1/steps that sum to 1 (66 for 3 parts)."""
    def compositions(total: int, k: int):
        if k == 1:
            yield (total,)
            return
        for first in range(total + 1):
            for rest in compositions(total - first, k - 1):
                yield (first, *rest)

    return [tuple(round(c / steps, 2) for c in comp) for comp in compositions(steps, parts)]


def _tune_hybrid(data, texts, protocol, matrix, users, relevant, record, progress) -> dict:
    """Each part tuned on its own, then the blend weights (steps of 0.1) chosen on the same validation split."""
    metric = record["metric"]
    fitted, val_scores = [], []
    for part in _hybrid_parts(texts):
        _, part_record = fit_tuned(part, data, texts, protocol, progress)
        chosen = build_fitted(part, part_record["chosen"], matrix, texts)
        fitted.append(chosen)
        val_scores.append(models.standardise(models.user_scores(chosen, users, matrix)))
        record["tried"].append({"part": part, **part_record})
    row_of = {int(u): r for r, u in enumerate(users)}
    best = (-1.0, None)
    for weights in _simplex(len(fitted)):
        blended = sum(w * v for w, v in zip(weights, val_scores) if w)
        value = evaluate(lambda u: blended[[row_of[int(x)] for x in u]], matrix, users, relevant, protocol)[metric]
        record["tried"].append({"weights": list(weights), metric: value})
        best = max(best, (value, weights), key=lambda t: t[0])
    if progress:
        progress(f"hybrid: weights {list(best[1])} ({metric} {best[0]:.4f} on validation)")
    return {"parts": [{"kind": p.kind, **p.params} for p in fitted], "weights": list(best[1])}


def fit_tuned(kind: str, data: Interactions, texts: list[str], protocol: Protocol, progress=None) -> tuple[object, dict]:
    """(model fitted on all of `data` with the setting that won on a validation split, tuning record)."""
    say = progress or (lambda message: None)
    val_mask = split(data, replace(protocol, test_fraction=0.1, seed=protocol.seed + 1))
    inner = _subset(data, ~val_mask)
    matrix = inner.matrix()
    users, relevant = held_out(data, val_mask)
    metric = f"ndcg@{protocol.k}"
    record: dict = {"metric": metric, "validation": "per-user random 90/10 of the training data", "tried": []}
    if kind == "hybrid":
        params = _tune_hybrid(data, texts, protocol, matrix, users, relevant, record, progress)
    else:
        best = (-1.0, None)
        for setting in GRIDS[kind]:
            start = time.perf_counter()
            candidate = models.build(kind, **setting)
            candidate.fit(matrix, texts)
            value = _score(candidate, matrix, protocol, users, relevant)[metric]
            record["tried"].append({**setting, metric: value, "fit_seconds": round(time.perf_counter() - start, 2)})
            say(f"{kind} {setting or ''}: {metric} {value:.4f} on validation")
            best = max(best, (value, candidate.params), key=lambda t: t[0])
        params = best[1]
    record["chosen"] = params
    start = time.perf_counter()
    model = build_fitted(kind, params, data.matrix(), texts)
    record["fit_seconds"] = round(time.perf_counter() - start, 2)
    return model, record


def build_fitted(kind: str, params: dict, matrix, texts: list[str]):
    model = models.build(kind, **params)
    model.fit(matrix, texts)
    if kind == "hybrid":
        model._refresh_params()
    return model


def evaluate_kind(kind: str, data: Interactions, texts: list[str], protocol: Protocol, baselines=BASELINES,
                  progress=None) -> dict:
    """The protocol-stamped comparison: `kind` and the baselines, each tuned on the training split only."""
    say = progress or (lambda message: None)
    test_mask = split(data, protocol)
    train = _subset(data, ~test_mask)
    matrix = train.matrix()
    users, relevant = held_out(data, test_mask)
    results = {}
    for name in dict.fromkeys([kind, *baselines]):
        say(f"fitting {name} on the training split")
        start = time.perf_counter()
        model, record = fit_tuned(name, train, texts, protocol, progress)
        seconds = time.perf_counter() - start
        scores = _score(model, matrix, protocol, users, relevant)
        results[name] = {**scores, "params": record["chosen"], "train_seconds_with_tuning": round(seconds, 2),
                         "final_fit_seconds": record["fit_seconds"]}
        say(f"{name}: ndcg@{protocol.k} {scores[f'ndcg@{protocol.k}']:.4f}")
    return {"protocol": protocol.describe(), "data": data.report, "train_interactions": int((~test_mask).sum()),
            "test_interactions": int(test_mask.sum()), "test_users": len(users), "models": results}


def load_data(data: str, items_file: str | None = None, min_rating: float | None = None, user_col: str | None = None,
              item_col: str | None = None) -> tuple[Interactions, list[str], dict[str, str]]:
    """(interactions over every known item, item texts in index order, titles) for a --data argument (a
    file, or movielens-100k with its own item file) and an optional --items file."""
    from pathlib import Path

    from loom.apps.recommend.data import read_interactions, read_items, resolve_data

    path, bundled_items = resolve_data(data)
    interactions = read_interactions(path, user_col, item_col, min_rating=min_rating)
    items_path = Path(items_file) if items_file else bundled_items
    if items_path is not None and not items_path.is_file():
        from loom.errors import NotFoundError

        raise NotFoundError(f"no items file {items_path}", "pass --items with a CSV/TSV/JSONL of item id + title/description")
    items = read_items(items_path) if items_path is not None else None
    full, texts = with_items(interactions, items)
    return full, texts, (items.titles if items else {})


def train_and_save(data: str, kind: str, name: str, items_file: str | None = None, protocol: Protocol = Protocol(),
                   min_rating: float | None = None, overwrite: bool = False, progress=None) -> dict:
    """Tune on a validation split, refit on all interactions, save as recommenders/NAME. Returns a summary."""
    from loom import home
    from loom.apps.recommend import store
    from loom.errors import ExistsError

    home.check_name(name, "recommender name")
    if home.recommender_dir(name).exists() and not overwrite:
        raise ExistsError(f"a recommender named {name!r} exists", "pick another --name, or pass --overwrite")
    if kind not in models.KINDS:
        from loom.errors import InputError

        raise InputError(f"unknown recommender {kind!r}", f"use one of: {', '.join(models.KINDS)}")
    interactions, texts, titles = load_data(data, items_file, min_rating)
    start = time.perf_counter()
    model, record = fit_tuned(kind, interactions, texts, protocol, progress)
    seconds = time.perf_counter() - start
    meta = {"data": interactions.report, "tuning": record, "protocol": protocol.describe(), "users": interactions.users,
            "items": interactions.items, "titles": {i: titles[i] for i in interactions.items if i in titles},
            "train_seconds": round(seconds, 2), "source": data, "items_file": items_file, "min_rating": min_rating}
    folder = store.save(name, model, interactions.matrix(), meta, overwrite)
    return {"name": name, "kind": kind, "params": model.params, "train_seconds": round(seconds, 2),
            "validation": {record["metric"]: max((t.get(record["metric"], -1) for t in record["tried"]), default=None)},
            "users": len(interactions.users), "items": len(interactions.items), "interactions": len(interactions.rows),
            "duplicates_merged": interactions.report["duplicates_merged"], "path": str(folder)}
