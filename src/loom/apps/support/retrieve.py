"""Hybrid retrieval: BM25 (SQLite FTS5) + dense (exact inner product over the KB's normalised
embeddings) + FAQ question matching, fused by reciprocal rank (RRF: score = sum 1/(RRF_K + rank)).

RRF needs no score calibration between signals, which is why it is the default fusion. Dense
search is exact (a flat index, one BLAS matrix-vector product): at 100k chunks x 384 dims that is
~38M multiply-adds, a few milliseconds on 2 cores, so no approximate index is needed at KB sizes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from loom.apps.support.store import KnowledgeBase
from loom.data.clean import EN_STOPWORDS
from loom.data.words import search_terms

# RRF's k: smaller trusts each list's top ranks more. The customary 60 tied dense-only MRR on the
# BBC headline benchmark; 20 beat both single signals on all three benchmark sets (bench/kb_retrieval.py).
RRF_K = 20
# FAQ questions vote only when they really resemble the query (cosine similarity, per encoder):
# otherwise every FAQ pair would get an extra vote whatever the question.
FAQ_VOTE_MIN = {"minilm": 0.5, "e5": 0.85}
MODES = ("hybrid", "bm25", "dense")
COMMON_SHARE = 0.1  # see bm25()
_MAX_QUERY_TERMS = 64  # a 10k-character question still makes a bounded FTS query
_MAX_QUERY_CHARS = 2000  # encoders truncate anyway; this bounds tokenisation work


@dataclass
class Hit:
    chunk_id: int
    source: str
    title: str
    text: str
    ordinal: int
    score: float  # the fused (or single-signal) score the list is sorted by
    scores: dict = field(default_factory=dict)  # per signal: bm25, dense, faq (raw), and their ranks
    faq: dict | None = None  # {"question", "answer"} when the chunk is an FAQ pair
    locator: dict | None = None  # scans and PDFs: {"page": 3, "regions": [[x0, y0, x1, y1], ...]} (page fractions)

    def to_dict(self) -> dict:
        return {"chunk_id": self.chunk_id, "source": self.source, "title": self.title, "text": self.text,
                "ordinal": self.ordinal, "score": self.score, "scores": self.scores, "faq": self.faq,
                **(self.locator or {})}


def bm25(kb: KnowledgeBase, query: str, limit: int) -> list[tuple[int, float]]:
    """[(chunk id, BM25 score, higher is better)] for chunks sharing any term with the query.

    Terms found in over COMMON_SHARE of the chunks are left out of the query (unless nothing else is
    left): their IDF is small, so they barely move the ranking, but scoring their long posting lists
    made up most of the query time at 100k chunks (33 ms for "said" alone)."""
    terms = []
    for t in search_terms(query[:_MAX_QUERY_CHARS]):
        if t not in EN_STOPWORDS and t not in terms:
            terms.append(t)
    terms = terms[:_MAX_QUERY_TERMS]
    if not terms:
        return []
    df = kb.term_frequencies(terms)
    terms = [t for t in terms if df[t] > 0]
    if not terms:
        return []
    cap = COMMON_SHARE * max(1, kb.chunk_count())
    rare = [t for t in terms if df[t] <= cap]
    terms = rare or sorted(terms, key=df.get)[:2]
    match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    with kb.connect() as db:
        rows = db.execute("SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) "
                          "LIMIT ?", (match, limit)).fetchall()
    return [(r[0], -r[1]) for r in rows]  # FTS5's bm25() is negated so that ascending order is best-first


_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="loom-bm25")  # BM25 runs beside the query embedding


def search(kb: KnowledgeBase, query: str, k: int = 5, mode: str = "hybrid", candidates: int = 50) -> list[Hit]:
    return search_detailed(kb, query, k, mode, candidates)[0]


def search_detailed(kb: KnowledgeBase, query: str, k: int = 5, mode: str = "hybrid",
                    candidates: int = 50) -> tuple[list[Hit], dict[str, float]]:
    """The hits, and each signal's best over the whole KB ({"dense": cosine, "faq": cosine, -1.0 when
    absent, "dense_id": that chunk}): what answerability is judged on, in the top k or not."""
    if mode not in MODES:
        from loom.errors import InputError

        raise InputError(f"unknown search mode {mode!r}", f"use one of: {', '.join(MODES)}")
    if not query.strip():
        from loom.errors import InputError

        raise InputError("the query is empty", "type a question")
    lists: dict[str, list[tuple[int, float]]] = {}
    best: dict = {"dense": -1.0, "faq": -1.0, "dense_id": None}
    # SQLite and torch both release the GIL, so BM25 and the query embedding overlap on 2 cores.
    lexical = _POOL.submit(bm25, kb, query, candidates) if mode in ("hybrid", "bm25") else None
    if mode in ("hybrid", "dense"):
        q = kb.embed([query[:_MAX_QUERY_CHARS]], query=True)[0]
        lists["dense"] = kb.dense_index().search(q, candidates)
        if lists["dense"]:
            best["dense_id"], best["dense"] = lists["dense"][0]
        if mode == "hybrid":
            floor = FAQ_VOTE_MIN.get(kb.encoder_name, 0.5)
            faq = kb.faq_index().search(q, candidates)
            best["faq"] = faq[0][1] if faq else -1.0
            lists["faq"] = [(c, s) for c, s in faq if s >= floor]
    if lexical is not None:
        lists = {"bm25": lexical.result(), **lists}
    fused: dict[int, float] = {}
    scores: dict[int, dict] = {}
    for signal, ranked in lists.items():
        for rank, (cid, raw) in enumerate(ranked, 1):
            entry = scores.setdefault(cid, {})
            if f"{signal}_rank" in entry:
                continue
            entry[signal], entry[f"{signal}_rank"] = round(raw, 6), rank
            fused[cid] = fused.get(cid, 0.0) + (1.0 / (RRF_K + rank) if mode == "hybrid" else raw)
    order = sorted(fused, key=lambda c: -fused[c])[:k]
    return _hits(kb, order, fused, scores), best


def _hits(kb: KnowledgeBase, order: list[int], fused: dict[int, float], scores: dict[int, dict]) -> list[Hit]:
    rows = kb.chunk_rows(order)
    return [Hit(c, rows[c]["source"], rows[c]["title"], rows[c]["text"], rows[c]["ordinal"], round(fused.get(c, 0.0), 6),
                scores[c], rows[c]["faq"], rows[c]["locator"]) for c in order if c in rows]


def hit(kb: KnowledgeBase, chunk_id: int, scores: dict) -> Hit | None:
    """One chunk as a Hit (a passage found by one signal outside the fused top k)."""
    found = _hits(kb, [chunk_id], {}, {chunk_id: scores})
    return found[0] if found else None
