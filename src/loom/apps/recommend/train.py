"""Fitting with a little tuning, and the protocol-stamped evaluation.

Every kind has a small grid (four settings at most). fit_tuned carves a validation split out of the
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
    "itemknn": [{"k": k} for k in (50, 100, 200, 400)],
    "als": [{"factors": f, "alpha": a} for f in (64, 128) for a in (1.0, 4.0)],
    "bpr": [{"factors": f, "learning_rate": lr} for f in (64, 128) for lr in (0.01, 0.05)],
    "ease": [{"lam": lam} for lam in (100.0, 250.0, 500.0, 1000.0)],
    "content": [{}],
}
HYBRID_WEIGHTS = [round(w, 1) for w in np.arange(0.0, 1.01, 0.1)]  # weight of the first part; the second gets 1 - w
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
    return ["ease", "content"] if any(texts) else ["ease", "itemknn"]


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
        fitted, val_scores = [], []
        for part in _hybrid_parts(texts):
            _, part_record = fit_tuned(part, data, texts, protocol, progress)
            chosen = build_fitted(part, part_record["chosen"], matrix, texts)
            fitted.append(chosen)
            val_scores.append(models.standardise(models.user_scores(chosen, users, matrix)))
            record["tried"].append({"part": part, **part_record})
        best = (-1.0, None)
        for w in HYBRID_WEIGHTS:
            blended = w * val_scores[0] + (1 - w) * val_scores[1]
            lookup = {int(u): r for u, r in zip(users, blended)}
            value = evaluate(lambda u: np.stack([lookup[int(x)] for x in u]), matrix, users, relevant, protocol)[metric]
            record["tried"].append({"weights": [w, round(1 - w, 1)], metric: value})
            best = max(best, (value, w), key=lambda t: t[0])
        params = {"parts": [{"kind": p.kind, **p.params} for p in fitted], "weights": [best[1], round(1 - best[1], 1)]}
        say(f"hybrid: weights {params['weights']} ({metric} {best[0]:.4f} on validation)")
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
