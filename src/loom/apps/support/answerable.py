"""Can this knowledge base answer the question? Scores calibrated per KB, not cosine thresholds set by eye.

A raw cosine similarity means different things under different encoders and KBs: e5 puts almost
every pair of Chinese sentences between 0.80 and 0.93, MiniLM spreads them from 0.0 to 0.9. So each KB
measures its own background: how similar its passages (and FAQ questions) look to ~40 questions per
language that it cannot answer (offtopic.py), embedded with the KB's encoder. A customer's question
then gets a z-score per signal,

    z = (best similarity - mean over off-topic questions) / their standard deviation,

computed against the off-topic questions of its own language (Chinese questions sit higher under e5),
and the larger of the passage and FAQ-question z-scores decides. z >= MIN_Z (2.0) means the evidence
stands out from the background by two standard deviations; below it, the turn is handed to a person,
unless lexical evidence agrees: z >= MIN_Z - 1 and the best passage holds at least half of the
question's IDF-weighted words (`coverage`; a word the KB has never seen weighs most). "What does
error E2 mean?" has a modest z under e5 but its rare words are in the passage; off-topic questions
of that z cover at most 0.39 of their words on bench/data/support, where these two numbers were chosen.

The statistics cost one embedding batch (~1 s for 80 questions under e5 on 2 cores) and are kept in the
KB's meta table for the KB generation they were measured on, so they are refreshed when content changes.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass

import numpy as np

from loom.apps.support import offtopic
from loom.apps.support.store import KnowledgeBase
from loom.errors import StorageError

MIN_Z = 2.0  # see the module docstring: two standard deviations above unanswerable questions
LEXICAL_SLACK = 1.0  # how far below MIN_Z a question may be when its words are in the passage
MIN_COVERAGE = 0.5  # the share of the question's IDF mass the passage must hold for that
FAQ_Z = 3.0  # a FAQ question this far above the background is the customer's question: answer with its answer
_MIN_STD = 0.01  # similarities of a tiny or uniform KB can be nearly constant; keep z finite and meaningful
_META_KEY = "answerability"
NO_EVIDENCE_Z = -10.0  # finite, so it survives JSON
SIGNALS = ("dense", "faq")


@dataclass
class Verdict:
    z: float  # the larger of the signals' z-scores
    signal: str  # which signal gave it: dense | faq
    similarity: float  # that signal's raw cosine similarity
    answerable: bool

    @property
    def confidence(self) -> float:
        """z as a 0..1 figure: the share of a normal background the evidence beats (Phi(z))."""
        return 0.5 * (1.0 + math.erf(self.z / math.sqrt(2.0)))


def background(kb: KnowledgeBase) -> dict:
    """{lang: {signal: [mean, std]}} for this KB's current content, from the meta cache when fresh."""
    stamp = f"{kb.generation()}:{kb.encoder_name}"
    cached = kb.meta(_META_KEY)
    if cached:
        stored = json.loads(cached)
        if stored.get("stamp") == stamp:
            return stored["stats"]
    stats = {}
    for lang, questions in (("zh", offtopic.ZH), ("en", offtopic.EN)):
        vectors = kb.embed(list(questions), query=True)
        stats[lang] = {signal: _mean_std([best for best in _best_similarities(kb, signal, vectors)]) for signal in SIGNALS}
    try:
        kb.set_meta(_META_KEY, json.dumps({"stamp": stamp, "stats": stats}))
    except (StorageError, sqlite3.OperationalError):  # a read-only or busy KB: measured again next time, still right
        pass
    return stats


def judge(kb: KnowledgeBase, lang: str, dense: float, faq: float, min_z: float = MIN_Z, coverage: float = 0.0) -> Verdict:
    """The verdict for a question whose best passage similarity is `dense`, best FAQ question
    similarity `faq` (-1 when the KB has no FAQ questions) and lexical `coverage` by the best passage."""
    stats = background(kb)[lang]
    scores = {"dense": dense, "faq": faq}
    zs = {s: (scores[s] - stats[s][0]) / stats[s][1] for s in SIGNALS if stats[s] is not None and scores[s] > -1.0}
    if not zs:  # an empty KB: nothing can be answered
        return Verdict(NO_EVIDENCE_Z, "dense", dense, False)
    signal = max(zs, key=zs.get)
    z = zs[signal]
    return Verdict(z, signal, scores[signal], z >= min_z or z >= min_z - LEXICAL_SLACK and coverage >= MIN_COVERAGE)


def coverage(kb: KnowledgeBase, question: str, passage: str) -> float:
    """Share of the question's IDF mass (log((N + 1) / (df + 0.5)) per distinct word, stop words out)
    found in the passage. Words common in the KB weigh little; words it has never seen weigh most."""
    from loom.data.clean import EN_STOPWORDS
    from loom.data.words import search_terms

    terms = list(dict.fromkeys(t for t in search_terms(question) if t not in EN_STOPWORDS))
    if not terms:
        return 0.0
    df, n = kb.term_frequencies(terms), kb.chunk_count()
    idf = {t: math.log((n + 1) / (df[t] + 0.5)) for t in terms}
    present = set(search_terms(passage))
    return sum(w for t, w in idf.items() if t in present) / sum(idf.values())


def faq_z(kb: KnowledgeBase, lang: str, similarity: float) -> float:
    stats = background(kb)[lang]["faq"]
    return NO_EVIDENCE_Z if stats is None else (similarity - stats[0]) / stats[1]


def _best_similarities(kb: KnowledgeBase, signal: str, vectors: np.ndarray) -> list[float]:
    index = kb.dense_index() if signal == "dense" else kb.faq_index()
    if index.size == 0:
        return []
    return [index.search(v, 1)[0][1] for v in vectors]


def _mean_std(values: list[float]) -> list[float] | None:
    if not values:
        return None
    return [float(np.mean(values)), max(float(np.std(values)), _MIN_STD)]
