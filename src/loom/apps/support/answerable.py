"""Can this knowledge base answer the question? Scores calibrated per KB, not cosine thresholds set by eye.

A raw cosine similarity means different things under different encoders and KBs: e5 puts almost
every pair of Chinese sentences between 0.80 and 0.93, MiniLM spreads them from 0.0 to 0.8. So each KB
measures two anchors per language with its own encoder:

    off     how similar its best passage is, on average, to ~40 questions it cannot answer (offtopic.py)
    own     how similar its best passage is, on average, to its own FAQ questions and section headings
            (or the first sentence of passages that have neither): questions it certainly answers

and a customer's question is placed on that scale by its best passage similarity `sim`:

    score = (sim - off) / (own - off)        0 = looks off-topic, 1 = looks like the KB's own questions

It is answerable when score >= MIN_SCORE (0.5, halfway), or when score >= MIN_SCORE - LEXICAL_SLACK and
the best passage holds at least half of the question's IDF-weighted words (`coverage`; a word the KB has
never seen weighs most): "What does error E2 mean?" sits low under e5, but its rare words are in the
passage. A passage in a language the encoder cannot read (Chinese under MiniLM) is no evidence at all.

Why two anchors: a z-score against the off-topic questions alone separated well under e5 but not under
MiniLM, whose off-topic similarities are tight (std 0.05) while in-domain ones spread to 0.8; the
midpoint between the anchors fell in the same place for both encoders on bench/data/support, where
MIN_SCORE, LEXICAL_SLACK and MIN_COVERAGE were checked (docs/support.md).

The anchors cost one embedding batch (~2 s under e5 on 2 cores) and are kept in the KB's meta table
for the KB generation they were measured on, so they are refreshed when content changes.
"""

from __future__ import annotations

import json
import math
import random
import re
import sqlite3
from dataclasses import dataclass

from loom.apps.support import offtopic
from loom.apps.support.store import KnowledgeBase
from loom.errors import StorageError
from loom.text import language

MIN_SCORE = 0.5  # halfway between looking off-topic and looking like the KB's own questions
LEXICAL_SLACK = 0.25  # how far below MIN_SCORE a question may be when its words are in the passage
MIN_COVERAGE = 0.5  # the share of the question's IDF mass the passage must hold for that
FAQ_MIN_SCORE = 0.5  # a FAQ question this far from off-topic towards "asked verbatim" is the customer's question
READS = {"minilm": {"en"}, "e5": {"zh", "en"}}  # which passages an encoder's similarities mean anything for
_MAX_OWN = 200  # own-question samples per KB: bounds the cost on large KBs
_MIN_SPAN = 0.02  # own - off can be ~0 on a tiny or odd KB; keep the scale finite
_META_KEY = "answerability"
_VERSION = 2  # of what is cached under _META_KEY: a KB measured by an older Loom is measured again


@dataclass
class Verdict:
    score: float  # where the best passage similarity sits: 0 off-topic, 1 like the KB's own questions
    similarity: float  # the raw cosine similarity of the best passage
    answerable: bool
    reason: str = ""

    @property
    def confidence(self) -> float:
        return min(1.0, max(0.0, self.score))


def anchors(kb: KnowledgeBase) -> dict:
    """{"dense": {lang: [off, own]}, "faq": {lang: off}} for the KB's current content (cached per generation)."""
    stamp = f"{_VERSION}:{kb.generation()}:{kb.encoder_name}"
    cached = kb.meta(_META_KEY)
    if cached:
        stored = json.loads(cached)
        if stored.get("stamp") == stamp:
            return stored["anchors"]
    own = _own_questions(kb)
    own_sims = dict(zip(own, _best(kb, kb.dense_index(), own)))
    out: dict = {"dense": {}, "faq": {}}
    for lang, questions in (("zh", offtopic.ZH), ("en", offtopic.EN)):
        off = _mean(_best(kb, kb.dense_index(), list(questions)))
        mine = [s for q, s in own_sims.items() if language(q) == lang] or list(own_sims.values())
        out["dense"][lang] = [off, _mean(mine)] if off is not None and mine else None
        out["faq"][lang] = _mean(_best(kb, kb.faq_index(), list(questions)))
    try:
        kb.set_meta(_META_KEY, json.dumps({"stamp": stamp, "anchors": out}))
    except (StorageError, sqlite3.OperationalError):  # a read-only or busy KB: measured again next time, still right
        pass
    return out


def judge(kb: KnowledgeBase, lang: str, similarity: float, passage: str = "", coverage: float = 0.0,
          min_score: float = MIN_SCORE) -> Verdict:
    """The verdict for a question in `lang` whose best passage (`passage`) has cosine `similarity`
    and holds `coverage` of its IDF-weighted words."""
    scale = anchors(kb)["dense"].get(lang)
    if scale is None or similarity <= -1.0:
        return Verdict(0.0, similarity, False, "the knowledge base is empty")
    if passage and language(passage) not in READS.get(kb.encoder_name, {"zh", "en"}):
        return Verdict(0.0, similarity, False, f"{kb.encoder_name} cannot read the best passage's language")
    off, own = scale
    score = (similarity - off) / max(own - off, _MIN_SPAN)
    if score >= min_score:
        return Verdict(score, similarity, True)
    if score >= min_score - LEXICAL_SLACK and coverage >= MIN_COVERAGE:
        return Verdict(score, similarity, True, "the question's words are in the passage")
    return Verdict(score, similarity, False, "the best passage is not much closer than off-topic questions get")


def faq_score(kb: KnowledgeBase, lang: str, similarity: float) -> float:
    """A FAQ question's similarity on the scale from off-topic (0) to the question asked verbatim (1)."""
    off = anchors(kb)["faq"].get(lang)
    return 0.0 if off is None else (similarity - off) / max(1.0 - off, _MIN_SPAN)


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


def _own_questions(kb: KnowledgeBase) -> list[str]:
    """FAQ questions, distinct section headings, and the opening of passages with neither (<= 80 chars)."""
    with kb.connect() as db:
        faqs = [r[0] for r in db.execute("SELECT question FROM faqs")]
        rows = db.execute("SELECT c.title, c.text FROM chunks c WHERE c.id NOT IN (SELECT chunk_id FROM faqs)").fetchall()
    headings = {title.split(" > ")[-1] for title, _ in rows if title}
    openings = [re.split(r"(?<=[。！？.!?])\s*", text.strip(), maxsplit=1)[0][:80] for title, text in rows if not title]
    own = list(dict.fromkeys(q.strip() for q in [*faqs, *sorted(headings), *openings] if q.strip()))
    return random.Random(0).sample(own, _MAX_OWN) if len(own) > _MAX_OWN else own


def _best(kb: KnowledgeBase, index, questions: list[str]) -> list[float]:
    if index.size == 0 or not questions:
        return []
    return [index.search(v, 1)[0][1] for v in kb.embed(questions, query=True)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
