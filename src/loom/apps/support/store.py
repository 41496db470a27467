"""A knowledge base is one SQLite file, $LOOM_HOME/kb/NAME.sqlite, holding everything:

    documents   one row per source file (path, SHA-256, kind doc|faq)
    chunks      text, heading path, position, embedding (float32 BLOB, L2-normalised)
    chunks_fts  FTS5 BM25 index over the chunks' search terms (jieba words for Chinese, Porter stems)
    faqs        question/answer pairs with their question embeddings (the FAQ-matching signal)
    turns       support conversations, citations, confidence and hand-off flags

Each file is written in one transaction (old chunks out, new chunks, index rows and embeddings
in), so a killed ingestion leaves every file either fully old or fully new, never half-indexed.
Embeddings are computed before the transaction, so the write lock is held only for the inserts.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loom import atomic, home
from loom.apps.support.chunking import Chunk, chunk_blocks
from loom.apps.support.readers import DOC_TYPES, FAQ_TYPES, FaqPair, read_document, read_faq
from loom.apps.support.vectors import DenseIndex
from loom.data.words import search_terms
from loom.errors import ExistsError, InputError, LoomError, NotFoundError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL, kind TEXT NOT NULL,
    chunks INTEGER NOT NULL, bytes INTEGER NOT NULL, added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(terms, tokenize = 'porter unicode61');
CREATE TABLE IF NOT EXISTS faqs (
    id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk_id INTEGER NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY, conversation TEXT NOT NULL, ts REAL NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, citations TEXT, confidence REAL, handoff INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS turns_conv ON turns (conversation, id);
"""
ENCODERS = ("minilm", "e5")
_EMBED_BATCH = 32


class KBLocked(LoomError):
    """Another process holds the KB's write lock for too long."""


kb_dir, kb_path = home.kb_dir, home.kb_path


def list_kbs() -> list[str]:
    return sorted(p.stem for p in kb_dir().glob("*.sqlite")) if kb_dir().is_dir() else []


@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    chunks: int = 0
    seconds: float = 0.0


class KnowledgeBase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = kb_path(name)
        if not self.path.is_file():
            raise NotFoundError(f"knowledge base {name!r} does not exist",
                                f"create it with `loom kb create {name}`; existing: {', '.join(list_kbs()) or '(none)'}")
        # What search derives from the content (vector indexes, term counts), valid for one generation.
        self._derived_gen, self._derived_cache = -1, {}
        self._encoder = ""

    @classmethod
    def create(cls, name: str, encoder: str = "auto") -> "KnowledgeBase":
        if encoder not in ENCODERS + ("auto",):
            raise InputError(f"unknown encoder {encoder!r}", f"use one of: auto, {', '.join(ENCODERS)}")
        path = kb_path(name)
        if path.exists():
            raise ExistsError(f"knowledge base {name!r} already exists", f"add files with `loom kb add {name} PATH`, or remove it first")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".creating")
        tmp.unlink(missing_ok=True)
        try:
            with atomic.guarded(path):
                db = sqlite3.connect(tmp)
                try:
                    db.execute("PRAGMA journal_mode = WAL")  # persistent: readers never block on a writer
                    db.executescript(_SCHEMA)
                    db.executemany("INSERT INTO meta VALUES (?, ?)",
                                   [("encoder", encoder), ("created", str(time.time())), ("generation", "0")])
                    db.commit()
                finally:
                    db.close()  # checkpoints the WAL into the main file before the rename
                tmp.rename(path)  # atomic: a KB file either does not exist or has its full schema
        except BaseException:
            for suffix in ("", "-wal", "-shm"):
                Path(str(tmp) + suffix).unlink(missing_ok=True)
            raise
        return cls(name)

    def connect(self) -> sqlite3.Connection:
        if not self.path.is_file():  # sqlite3 would silently create an empty file
            raise NotFoundError(f"knowledge base {self.name!r} does not exist (removed?)", f"create it with `loom kb create {self.name}`")
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA foreign_keys = ON")  # per connection: deleting a document cascades to its chunks
        return db

    def meta(self, key: str) -> str:
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else ""

    def set_meta(self, key: str, value: str) -> None:
        with atomic.guarded(self.path), self.connect() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    @property
    def encoder_name(self) -> str:
        # Fixed once settled (only 'auto' still changes, at the first file): read it once, not per query.
        if self._encoder in ("", "auto"):
            self._encoder = self.meta("encoder")
        return self._encoder

    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    def remove(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    # -- writing ---------------------------------------------------------------------------
    def add_paths(self, paths: list[str], progress: bool = True) -> AddReport:
        from tqdm import tqdm

        report, start = AddReport(), time.perf_counter()
        files = _expand(paths, report)
        bar = tqdm(files, desc=f"kb {self.name}", unit=" files", disable=not progress)
        for path in bar:
            try:
                self._add_file(path, report)
            except InputError as e:
                report.failed.append((str(path), e.message))
            bar.set_postfix(chunks=report.chunks)
        report.seconds = time.perf_counter() - start
        return report

    def add_text(self, source: str, text: str) -> AddReport:
        """Add content sent as text (the HTTP API): `source` names it and its suffix picks the reader
        (.md, .txt, .html, .csv/.jsonl FAQ; .pdf/.docx names are read as plain text); re-sending the
        same source replaces it."""
        suffix = Path(source).suffix.lower()
        as_text = suffix not in DOC_TYPES | FAQ_TYPES or suffix in (".pdf", ".docx")
        return self.add_bytes(source, text.encode("utf-8"), read_as=".txt" if as_text else suffix)

    def add_bytes(self, source: str, data: bytes, read_as: str | None = None) -> AddReport:
        """Add an uploaded file's bytes under the label `source` (never a path: only its suffix is
        used, to pick the reader, unless `read_as` names one). The bytes are written to a private
        scratch file in LOOM_HOME/tmp while they are read."""
        import tempfile

        suffix = (read_as or Path(source).suffix).lower()
        report = AddReport()
        if suffix not in DOC_TYPES | FAQ_TYPES:
            report.failed.append((source, f"unsupported file type {suffix or '(none)'!r}; supported: "
                                          f"{', '.join(sorted(DOC_TYPES | FAQ_TYPES))}"))
            return report
        with atomic.guarded(home.home() / "tmp"), tempfile.TemporaryDirectory(dir=home.tmp_dir()) as tmp:
            stem = re.sub(r"[^\w\-]+", "_", Path(source.replace("\\", "/")).stem)[:80].strip("_") or "upload"
            path = Path(tmp) / f"{stem}{suffix}"  # read_* name the file in their messages
            path.write_bytes(data)
            try:
                self._add_file(path, report, source=source)
            except InputError as e:
                report.failed.append((source, e.message))
        return report

    def _add_file(self, path: Path, report: AddReport, source: str | None = None) -> None:
        source = source or str(path.resolve())
        from loom.apps.support import readers

        data = path.read_bytes() if path.stat().st_size <= readers.MAX_FILE_BYTES else b""  # too big: read_* refuses it below
        digest = hashlib.sha256(data).hexdigest()
        with self.connect() as db:
            row = db.execute("SELECT sha256 FROM documents WHERE source = ?", (source,)).fetchone()
        if row and row[0] == digest:
            report.unchanged.append(source)
            return
        if path.suffix.lower() in FAQ_TYPES:
            pairs = read_faq(path)
            chunks = [Chunk(i, "FAQ", f"Q: {p.question}\nA: {p.answer}") for i, p in enumerate(pairs)]
        else:
            pairs, chunks = [], chunk_blocks(read_document(path))
        if not chunks:
            raise InputError(f"{path.name} has no text", "check the file; scanned PDFs need OCR first")
        self.write_document(source, digest, len(data), chunks, pairs)
        (report.replaced if row else report.added).append(source)
        report.chunks += len(chunks)

    def write_document(self, source: str, digest: str, size: int, chunks: list[Chunk], pairs: list[FaqPair]) -> None:
        """Replace `source`'s content in one transaction (embeddings computed first)."""
        self._settle_encoder([c.text for c in chunks])
        vectors = self.embed([c.indexed for c in chunks])
        questions = self.embed([p.question for p in pairs]) if pairs else np.zeros((0, 1), np.float32)
        with atomic.guarded(self.path):
            self._insert_document(source, digest, size, chunks, pairs, vectors, questions)

    def _insert_document(self, source, digest, size, chunks, pairs, vectors, questions) -> None:
        db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now, not halfway through
            self._delete(db, source)
            doc_id = db.execute("INSERT INTO documents (source, sha256, kind, chunks, bytes, added) VALUES (?,?,?,?,?,?)",
                                (source, digest, "faq" if pairs else "doc", len(chunks), size, time.time())).lastrowid
            chunk_ids = []
            for chunk, vector in zip(chunks, vectors):
                cid = db.execute("INSERT INTO chunks (doc_id, ordinal, title, text, embedding) VALUES (?,?,?,?,?)",
                                 (doc_id, chunk.ordinal, chunk.title, chunk.text, vector.tobytes())).lastrowid
                db.execute("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", (cid, " ".join(search_terms(chunk.indexed))))
                chunk_ids.append(cid)
            for pair, vector, cid in zip(pairs, questions, chunk_ids):
                db.execute("INSERT INTO faqs (doc_id, chunk_id, question, answer, embedding) VALUES (?,?,?,?,?)",
                           (doc_id, cid, pair.question, pair.answer, vector.tobytes()))
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            db.commit()
        except sqlite3.OperationalError as e:
            db.rollback()
            if "locked" in str(e):
                raise KBLocked(f"knowledge base {self.name!r} is being written by another process", "retry when it finishes") from e
            raise
        finally:
            db.close()

    def delete_document(self, source: str) -> int:
        """Remove a document (by its path as added, or any path that resolves to it); chunks removed."""
        with atomic.guarded(self.path):
            return self._delete_document(source)

    def _delete_document(self, source: str) -> int:
        db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            resolved = str(Path(source).expanduser().resolve())
            target = next((s for s in (source, resolved) if db.execute("SELECT 1 FROM documents WHERE source = ?", (s,)).fetchone()), None)
            if target is None:
                raise NotFoundError(f"{source!r} is not in knowledge base {self.name!r}", f"see `loom kb show {self.name}`")
            removed = self._delete(db, target)
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            db.commit()
            return removed
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    def _delete(self, db: sqlite3.Connection, source: str) -> int:
        row = db.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
        if row is None:
            return 0
        ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc_id = ?", row)]
        db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        db.execute("DELETE FROM documents WHERE id = ?", row)  # chunks and faqs cascade
        return len(ids)

    # -- encoder ---------------------------------------------------------------------------
    def _settle_encoder(self, texts: list[str]) -> None:
        """'auto' becomes e5 for Chinese-heavy content (MiniLM maps many Chinese characters to
        [UNK]) and minilm otherwise, fixed at the first file."""
        if self.encoder_name != "auto":
            return
        cjk = sum(1 for t in texts if any("\u4e00" <= ch <= "\u9fff" for ch in t))
        chosen = "e5" if cjk >= 0.2 * max(1, len(texts)) else "minilm"
        with atomic.guarded(self.path), self.connect() as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'encoder' AND value = 'auto'", (chosen,))

    def embed(self, texts: list[str], query: bool = False) -> np.ndarray:
        """[len(texts), dim] float32, L2-normalised."""
        from loom.apps.support.encoders import encoder

        backend = encoder(self.encoder_name if self.encoder_name != "auto" else "minilm")
        out = []
        for i in range(0, len(texts), _EMBED_BATCH):
            out += backend.embed(texts[i:i + _EMBED_BATCH], query=query).vectors
        matrix = np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    # -- reading ---------------------------------------------------------------------------
    def documents(self) -> list[dict]:
        with self.connect() as db:
            rows = db.execute("SELECT source, kind, chunks, bytes, added FROM documents ORDER BY source").fetchall()
        return [{"source": r[0], "kind": r[1], "chunks": r[2], "bytes": r[3], "added": r[4]} for r in rows]

    def chunks_of(self, source: str) -> list[dict]:
        """A document's chunks in order (what the web page shows for a file)."""
        with self.connect() as db:
            rows = db.execute("SELECT c.ordinal, c.title, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
                              "WHERE d.source = ? ORDER BY c.ordinal", (source,)).fetchall()
        if not rows:
            raise NotFoundError(f"{source!r} is not in knowledge base {self.name!r}", f"see `loom kb show {self.name}`")
        return [{"ordinal": r[0], "title": r[1], "text": r[2]} for r in rows]

    def stats(self) -> dict:
        with self.connect() as db:
            docs, chunks = db.execute("SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents").fetchone()
            faqs = db.execute("SELECT COUNT(*) FROM faqs").fetchone()[0]
        return {"name": self.name, "path": str(self.path), "encoder": self.encoder_name, "documents": docs,
                "chunks": chunks, "faqs": faqs, "bytes_on_disk": self.path.stat().st_size}

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
            rows = db.execute(f"SELECT c.id, d.source, c.ordinal, c.title, c.text, f.question, f.answer FROM chunks c "
                              f"JOIN documents d ON d.id = c.doc_id LEFT JOIN faqs f ON f.chunk_id = c.id WHERE c.id IN ({marks})", ids).fetchall()
        return {r[0]: {"chunk_id": r[0], "source": r[1], "ordinal": r[2], "title": r[3], "text": r[4],
                       "faq": {"question": r[5], "answer": r[6]} if r[5] is not None else None} for r in rows}

    def log_turn(self, conversation: str, role: str, content: str, citations: list | None = None,
                 confidence: float | None = None, handoff: bool = False) -> None:
        with atomic.guarded(self.path), self.connect() as db:
            db.execute("INSERT INTO turns (conversation, ts, role, content, citations, confidence, handoff) VALUES (?,?,?,?,?,?,?)",
                       (conversation, time.time(), role, content, json.dumps(citations, ensure_ascii=False) if citations else None,
                        confidence, int(handoff)))

    def handoffs(self) -> list[dict]:
        with self.connect() as db:
            rows = db.execute("SELECT t.conversation, t.ts, t.confidence, (SELECT content FROM turns u WHERE u.conversation = "
                              "t.conversation AND u.id < t.id AND u.role = 'user' ORDER BY u.id DESC LIMIT 1) FROM turns t "
                              "WHERE t.handoff = 1 ORDER BY t.id").fetchall()
        return [{"conversation": r[0], "ts": r[1], "confidence": r[2], "question": r[3]} for r in rows]


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _stack(rows) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 1), dtype=np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return ids, np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])


def _expand(paths: list[str], report: AddReport) -> list[Path]:
    files = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in DOC_TYPES | FAQ_TYPES)
        elif p.is_file():
            files.append(p)
        else:
            report.failed.append((raw, "no such file or folder"))
    return files
