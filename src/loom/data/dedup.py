"""Exact and near-duplicate detection that streams: documents are seen once, in order, and the
first of a group of duplicates is kept.

Near duplicates: one-permutation MinHash over character shingles. Each shingle is hashed once
(a rolling polynomial over code points, then a 64-bit mixer); the top bits pick one of `num_perm`
bins and the bin keeps its minimum. Empty bins (short texts) borrow from the next non-empty bin
(densification), so short documents still get full signatures. Cost is O(chars) numpy work per
document, against O(chars x num_perm) for classic MinHash.

Candidates come from LSH banding; each candidate is verified by the share of equal signature
slots (an estimate of Jaccard similarity) before a document is called a duplicate.
"""

from __future__ import annotations

import functools

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_P = np.uint64(0x100000001B3)  # FNV prime: spreads code points across the 64-bit word


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: makes every output bit depend on every input bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingle_hashes(cps: np.ndarray, k: int) -> np.ndarray:
    """64-bit hashes of all k-character windows (uint64 [max(1, n-k+1)])."""
    if len(cps) < k:
        k = max(1, len(cps))
        if len(cps) == 0:
            return np.zeros(1, dtype=np.uint64)
    n = len(cps) - k + 1
    c = cps.astype(np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = h * _P + c[j : j + n]
        return _mix64(h)


def signature(cps: np.ndarray, k: int, num_perm: int) -> np.ndarray:
    """One-permutation MinHash signature (uint32 [num_perm])."""
    h = shingle_hashes(cps, k)
    bins = (h % np.uint64(num_perm)).astype(np.intp)
    vals = (h >> np.uint64(32)).astype(np.uint32)
    sig = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
    filled = np.zeros(num_perm, dtype=bool)
    np.minimum.at(sig, bins, vals)
    filled[bins] = True
    if not filled.all():
        # Densify: an empty bin takes the value of the next filled bin (circularly), offset by the
        # distance so two different documents do not agree on borrowed slots by construction.
        idx = np.flatnonzero(filled)
        empty = np.flatnonzero(~filled)
        pos = np.searchsorted(idx, empty) % len(idx)
        dist = (idx[pos] - empty) % num_perm
        with np.errstate(over="ignore"):
            sig[empty] = sig[idx[pos]] + (dist.astype(np.uint32) * np.uint32(0x9E3779B1))
    return sig


@functools.lru_cache(maxsize=16)
def lsh_params(num_perm: int, threshold: float) -> tuple[int, int]:
    """Bands b and rows r (b*r <= num_perm) minimising missed pairs above `threshold` plus
    false candidates below it (numerically integrated S-curve), weighted 0.7 / 0.3 toward recall
    because candidates are verified afterwards anyway."""
    best, best_cost = (1, num_perm), float("inf")
    xs = np.linspace(0, 1, 201)
    for b in range(1, num_perm + 1):
        r = num_perm // b
        p = 1 - (1 - xs**r) ** b
        fp = np.trapezoid(np.where(xs < threshold, p, 0), xs)
        fn = np.trapezoid(np.where(xs >= threshold, 1 - p, 0), xs)
        cost = 0.3 * fp + 0.7 * fn
        if cost < best_cost:
            best, best_cost = (b, r), cost
    return best


class BandHasher:
    """Signature -> one 64-bit key per LSH band. Deterministic, so worker processes can compute
    keys and the parent only does dictionary look-ups."""

    def __init__(self, num_perm: int, threshold: float) -> None:
        self.bands, self.rows = lsh_params(num_perm, threshold)
        rng = np.random.default_rng(0)
        self._mult = rng.integers(1, 2**63, size=(self.rows,), dtype=np.uint64) | np.uint64(1)
        self._salt = np.arange(self.bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)

    def keys(self, sig: np.ndarray) -> list[int]:
        rows = sig[: self.bands * self.rows].reshape(self.bands, self.rows).astype(np.uint64)
        with np.errstate(over="ignore"):
            return _mix64((rows * self._mult).sum(axis=1, dtype=np.uint64) ^ self._salt).tolist()


class NearDuplicateIndex:
    """Streaming LSH index: `seen(sig, keys)` says whether a similar document was added before,
    and adds this one if not. Memory: num_perm*4 bytes per kept document plus one dict entry per
    band (~100 bytes each): ~1 KB per kept document with the defaults."""

    def __init__(self, num_perm: int, threshold: float) -> None:
        self.threshold = threshold
        self.hasher = BandHasher(num_perm, threshold)
        self.tables: dict[int, int] = {}
        self.sigs = np.zeros((1024, num_perm), dtype=np.uint32)
        self.count = 0

    def seen(self, sig: np.ndarray, keys: list[int] | None = None) -> bool:
        keys = self.hasher.keys(sig) if keys is None else keys
        checked: set[int] = set()
        for key in keys:
            other = self.tables.get(key)
            if other is not None and other not in checked:
                checked.add(other)
                # Verify the candidate: share of equal slots estimates Jaccard similarity.
                if np.count_nonzero(self.sigs[other] == sig) >= self.threshold * len(sig):
                    return True
        if self.count == len(self.sigs):
            self.sigs = np.concatenate([self.sigs, np.zeros_like(self.sigs)])
        self.sigs[self.count] = sig
        for key in keys:
            self.tables.setdefault(key, self.count)
        self.count += 1
        return False


__all__ = ["signature", "shingle_hashes", "BandHasher", "NearDuplicateIndex", "lsh_params"]
