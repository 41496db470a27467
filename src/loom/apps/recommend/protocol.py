"""The evaluation protocol, stated and seeded, and the ranking metrics.

Default protocol (the one most published MovieLens figures use): every user's interactions are split
at random 80/20 with a fixed seed (users with fewer than 2 interactions stay in training); a model
trained on the 80% ranks *all* items for each user, the items the user already has in training are
excluded, and the top k are compared with the held-out 20%. Every result carries this protocol, so
two figures are comparable only when their protocols are equal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from loom.apps.recommend.data import Interactions


@dataclass(frozen=True)
class Protocol:
    test_fraction: float = 0.2  # share of each user's interactions held out
    seed: int = 0
    k: int = 10
    exclude_seen: bool = True  # a user's training items are never recommended back
    min_user_interactions: int = 2  # users with fewer interactions are only trained on

    def describe(self) -> dict:
        return {"split": f"per-user random {round(100 * (1 - self.test_fraction))}/{round(100 * self.test_fraction)}",
                "ranking": "full (all items)", "filters": "seen items excluded" if self.exclude_seen else "none", **asdict(self)}


def split(data: Interactions, protocol: Protocol) -> np.ndarray:
    """A boolean mask over the interactions: True = test. Per user, round(test_fraction * n) of them
    (at least 1, at most n - 1) drawn with the protocol's seed."""
    rng = np.random.default_rng(protocol.seed)
    test = np.zeros(len(data.rows), dtype=bool)
    order = np.argsort(data.rows, kind="stable")
    bounds = np.flatnonzero(np.diff(data.rows[order])) + 1
    for group in np.split(order, bounds):
        n = len(group)
        if n < protocol.min_user_interactions:
            continue
        n_test = min(n - 1, max(1, int(round(protocol.test_fraction * n))))
        test[rng.choice(group, size=n_test, replace=False)] = True
    return test


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores per row, best first ([n, k]); -inf entries only fill a short row."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def rank_metrics(recommended: np.ndarray, relevant: list[np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Per-user recall@k, nDCG@k (binary relevance), hit@k and MRR@k for top-k lists [n, k] against
    each user's held-out items."""
    n = len(relevant)
    recall, ndcg, hit, mrr = (np.zeros(n) for _ in range(4))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for u, (recs, rel) in enumerate(zip(recommended, relevant)):
        hits = np.isin(recs[:k], rel)
        if not hits.any():
            continue
        recall[u] = hits.sum() / len(rel)
        ndcg[u] = (hits * discounts[:len(hits)]).sum() / discounts[:min(k, len(rel))].sum()
        hit[u] = 1.0
        mrr[u] = 1.0 / (np.argmax(hits) + 1)
    return {f"recall@{k}": recall, f"ndcg@{k}": ndcg, f"hit@{k}": hit, f"mrr@{k}": mrr}


def evaluate(scorer, train, test_users: np.ndarray, relevant: list[np.ndarray], protocol: Protocol,
             batch: int = 512) -> dict:
    """Score every test user against all items, exclude seen ones, and average the metrics. Also
    catalogue coverage (share of items in anyone's top k) and popularity bias: the mean training
    popularity percentile of recommended items (0.5 = as popular as a random item, 1.0 = the most
    popular) and the share of recommendations from the 20% most popular items."""
    k = protocol.k
    popularity = np.asarray(train.sum(axis=0)).ravel()
    percentile = popularity.argsort().argsort() / max(1, len(popularity) - 1)
    head = percentile >= 0.8
    all_recs = []
    for start in range(0, len(test_users), batch):
        users = test_users[start:start + batch]
        scores = np.asarray(scorer(users), dtype=np.float32)
        if protocol.exclude_seen:
            seen = train[users]
            scores[seen.nonzero()] = -np.inf
        all_recs.append(top_k(scores, k))
    recs = np.concatenate(all_recs) if all_recs else np.zeros((0, k), dtype=np.int64)
    per_user = rank_metrics(recs, relevant, k)
    out = {name: float(v.mean()) if len(v) else 0.0 for name, v in per_user.items()}
    out["coverage"] = float(len(np.unique(recs)) / train.shape[1]) if len(recs) else 0.0
    out["popularity_percentile"] = float(percentile[recs].mean()) if len(recs) else 0.0
    out["head_share"] = float(head[recs].mean()) if len(recs) else 0.0
    out["users"] = len(test_users)
    return out


def held_out(data: Interactions, test_mask: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(test users, each one's held-out item indices) from a split mask."""
    users = np.unique(data.rows[test_mask])
    by_user = {u: [] for u in users.tolist()}
    for u, i in zip(data.rows[test_mask].tolist(), data.cols[test_mask].tolist()):
        by_user[u].append(i)
    return users, [np.array(by_user[u]) for u in users.tolist()]
