"""Reading what search needs from a knowledge base: the encoder, the dense vectors of chunks and FAQ
questions, FTS term counts and chunk rows. Derived data is cached per KB generation (every write bumps
it), so a reader never serves vectors of content that changed. A mixin of KnowledgeBase (store.py)."""

from __future__ import annotations

import json

import numpy as np

from loom import atomic
from loom.apps.support.vectors import DenseIndex
from loom.text import CJK_RUN, has_cjk

_MENTION_SCAN_CHUNKS = 20_000  # larger KBs count Chinese words by FTS (jieba's cuts) instead of by substring

_EMBED_BATCH = 32  # texts per encoder call


class Index:
    def _settle_encoder(self, texts: list[str]) -> None:
        """'auto' becomes e5 for Chinese-heavy content (MiniLM maps many Chinese characters to [UNK])
        and minilm otherwise, at the first file. The choice stays provisional: a KB that 'auto' set to
        minilm and that then receives a Chinese-heavy file moves to e5, its existing chunks and FAQ
        questions embedded again, so the order files arrive in (manual_en.md before manual_zh.md)
        never leaves Chinese content under an encoder that cannot read it."""
        chinese = sum(1 for t in texts if has_cjk(t)) >= 0.2 * max(1, len(texts))
        if self.encoder_name == "auto":
            with atomic.guarded(self.path), self.connect() as db:
                db.execute("UPDATE meta SET value = ? WHERE key = 'encoder' AND value = 'auto'", ("e5" if chinese else "minilm",))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('encoder_auto', '1')")
            self._encoder = ""
        elif self.encoder_name == "minilm" and chinese and self.meta("encoder_auto") == "1":
            self._reembed("e5")

    def _reembed(self, encoder_name: str) -> None:
        """Switch the KB's encoder and embed every chunk and FAQ question again, under one write
        transaction taken first (a writer that comes meanwhile waits, so no chunk keeps the old vectors)."""
        with atomic.guarded(self.path):
            db = self.connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                chunks = db.execute("SELECT id, title, text FROM chunks ORDER BY id").fetchall()
                faqs = db.execute("SELECT id, question FROM faqs ORDER BY id").fetchall()
                self._encoder = encoder_name  # embed() below uses the new encoder
                chunk_vectors = self.embed([f"{t}\n{x}" if t else x for _, t, x in chunks]) if chunks else []
                faq_vectors = self.embed([q for _, q in faqs]) if faqs else []
                db.executemany("UPDATE chunks SET embedding = ? WHERE id = ?", [(v.tobytes(), i) for (i, _, _), v in zip(chunks, chunk_vectors)])
                db.executemany("UPDATE faqs SET embedding = ? WHERE id = ?", [(v.tobytes(), i) for (i, _), v in zip(faqs, faq_vectors)])
                db.execute("UPDATE meta SET value = ? WHERE key = 'encoder'", (encoder_name,))
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                db.commit()
            except BaseException:
                db.rollback()
                self._encoder = ""  # read again from the file: still the old encoder
                raise
            finally:
                db.close()

    def embed(self, texts: list[str], query: bool = False) -> np.ndarray:
        """[len(texts), dim] float32, L2-normalised."""
        from loom.apps.encoders import encoder

        backend = encoder(self.encoder_name if self.encoder_name != "auto" else "minilm")
        out = []
        for i in range(0, len(texts), _EMBED_BATCH):
            out += backend.embed(texts[i:i + _EMBED_BATCH], query=query).vectors
        matrix = np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    def _derived(self) -> dict:
        """The cache of derived data, emptied whenever the KB has changed since it was filled."""
        gen = self.generation()
        if gen != self._derived_gen:
            self._derived_gen, self._derived_cache = gen, {}
        return self._derived_cache

    def _vectors(self, key: str, sql: str) -> DenseIndex:
        cache = self._derived()
        if key not in cache:
            with self.connect() as db:
                cache[key] = DenseIndex(*_stack(db.execute(sql).fetchall()))
        return cache[key]

    def dense_index(self) -> DenseIndex:
        """The chunks' vectors."""
        return self._vectors("dense", "SELECT id, embedding FROM chunks ORDER BY id")

    def faq_index(self) -> DenseIndex:
        """FAQ question vectors, searched by chunk id of their pair."""
        return self._vectors("faq", "SELECT chunk_id, embedding FROM faqs ORDER BY id")

    def term_frequencies(self, terms: list[str]) -> dict[str, int]:
        """How many chunks contain each term (FTS5 counts)."""
        counts = self._derived().setdefault("df", {})
        missing = [t for t in terms if t not in counts]
        if missing:
            with self.connect() as db:
                for t in missing:
                    counts[t] = db.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (_fts_phrase(t),)).fetchone()[0]
        return {t: counts[t] for t in terms}

    def mention_frequencies(self, terms: list[str]) -> dict[str, int]:
        """How many chunks mention each term: term_frequencies for words, but a Chinese word counts
        wherever its characters appear in a row ("停车" in "停车场", "送货" in "送货上门"), because jieba
        cuts the same characters into different words in a question and in a passage."""
        if self.chunk_count() > _MENTION_SCAN_CHUNKS:  # a substring scan reads every chunk per word: bounded by size
            return self.term_frequencies(terms)
        counts = self._derived().setdefault("mentions", {})
        chinese = [t for t in terms if t not in counts and CJK_RUN.fullmatch(t)]
        if chinese:
            with self.connect() as db:
                for t in chinese:
                    counts[t] = db.execute("SELECT COUNT(*) FROM chunks WHERE instr(coalesce(title, '') || ' ' || text, ?) > 0",
                                           (t,)).fetchone()[0]
        words = [t for t in terms if not CJK_RUN.fullmatch(t)]
        return {**self.term_frequencies(words), **{t: counts[t] for t in terms if CJK_RUN.fullmatch(t)}}

    def chunk_count(self) -> int:
        cache = self._derived()
        if "count" not in cache:
            with self.connect() as db:
                cache["count"] = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return cache["count"]

    def chunk_rows(self, ids: list[int]) -> dict[int, dict]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self.connect() as db:
            rows = db.execute(f"SELECT c.id, d.source, c.ordinal, c.title, c.text, f.question, f.answer, c.locator FROM chunks c "
                              f"JOIN documents d ON d.id = c.doc_id LEFT JOIN faqs f ON f.chunk_id = c.id WHERE c.id IN ({marks})", ids).fetchall()
        return {r[0]: {"chunk_id": r[0], "source": r[1], "ordinal": r[2], "title": r[3], "text": r[4],
                       "faq": {"question": r[5], "answer": r[6]} if r[5] is not None else None,
                       "locator": json.loads(r[7]) if r[7] else None} for r in rows}


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _stack(rows) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 1), dtype=np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return ids, np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
