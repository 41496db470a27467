"""A knowledge base is one SQLite file, $LOOM_HOME/kb/NAME.sqlite, holding everything:

    documents   one row per source file (path, SHA-256, kind doc|faq)
    chunks      text, heading path, position, embedding (float32 BLOB, L2-normalised), and for scans and
                PDFs a locator: {"page": 3, "regions": [[x0, y0, x1, y1], ...]} as page fractions
    pages       a JPEG preview of each page read by OCR, so a cited passage can be shown on its page
    chunks_fts  FTS5 BM25 index over the chunks' search terms (jieba words for Chinese, Porter stems)
    faqs        question/answer pairs with their question embeddings (the FAQ-matching signal)
    turns       support conversations, citations, confidence and hand-off flags

Each file is written in one transaction (old chunks out, new chunks, index rows and embeddings
in), so a killed ingestion leaves every file either fully old or fully new, never half-indexed.
Embeddings are computed before the transaction, so the write lock is held only for the inserts.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from loom import atomic, home
from loom.apps.support.conversations import Conversations
from loom.apps.support.index import Index
from loom.apps.support.ingest import AddReport, Ingest, KBLocked  # noqa: F401  (part of this module's API)
from loom.errors import ExistsError, InputError, NotFoundError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL, kind TEXT NOT NULL,
    chunks INTEGER NOT NULL, bytes INTEGER NOT NULL, added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL, locator TEXT);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
CREATE TABLE IF NOT EXISTS pages (
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE, page INTEGER NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, jpeg BLOB NOT NULL, PRIMARY KEY (doc_id, page));
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

kb_dir, kb_path = home.kb_dir, home.kb_path


def located(locator: str | None) -> dict:
    """A chunk's stored locator as fields for citations: {"page": 3, "regions": [...]}, or {}."""
    import json

    return json.loads(locator) if locator else {}


def list_kbs() -> list[str]:
    return sorted(p.stem for p in kb_dir().glob("*.sqlite")) if kb_dir().is_dir() else []


class KnowledgeBase(Ingest, Index, Conversations):
    """One KB file. Its jobs live in mixins: ingest.py writes, index.py reads for search,
    conversations.py logs turns; this class opens, creates, describes and removes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = kb_path(name)
        if not self.path.is_file():
            raise NotFoundError(f"knowledge base {name!r} does not exist",
                                f"create it with `loom kb create {name}`; existing: {', '.join(list_kbs()) or '(none)'}")
        # What search derives from the content (vector indexes, term counts), valid for one generation.
        self._derived_gen, self._derived_cache = -1, {}
        self._encoder = ""
        self._upgrade()

    def _upgrade(self) -> None:
        """KBs made before scans were read lack chunks.locator and the pages table: add them in place."""
        with self.connect() as db:
            columns = {r[1] for r in db.execute("PRAGMA table_info(chunks)")}
            has_pages = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'pages'").fetchone()
        if "locator" in columns and has_pages:
            return
        with atomic.guarded(self.path), self.connect() as db:
            if "locator" not in columns:
                db.execute("ALTER TABLE chunks ADD COLUMN locator TEXT")
            db.executescript(_SCHEMA)  # CREATE ... IF NOT EXISTS: only the missing pages table is made

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

    # -- describing ------------------------------------------------------------------------
    def documents(self) -> list[dict]:
        with self.connect() as db:
            rows = db.execute("SELECT source, kind, chunks, bytes, added FROM documents ORDER BY source").fetchall()
        return [{"source": r[0], "kind": r[1], "chunks": r[2], "bytes": r[3], "added": r[4]} for r in rows]

    def chunks_of(self, source: str) -> list[dict]:
        """A document's chunks in order (what the web page shows for a file)."""
        with self.connect() as db:
            rows = db.execute("SELECT c.ordinal, c.title, c.text, c.locator FROM chunks c JOIN documents d ON d.id = c.doc_id "
                              "WHERE d.source = ? ORDER BY c.ordinal", (source,)).fetchall()
        if not rows:
            raise NotFoundError(f"{source!r} is not in knowledge base {self.name!r}", f"see `loom kb show {self.name}`")
        return [{"ordinal": r[0], "title": r[1], "text": r[2], **located(r[3])} for r in rows]

    def page_image(self, source: str, page: int) -> bytes:
        """The JPEG preview of a scanned page of `source` (NotFoundError when there is none)."""
        with self.connect() as db:
            row = db.execute("SELECT p.jpeg FROM pages p JOIN documents d ON d.id = p.doc_id WHERE d.source = ? AND p.page = ?",
                             (source, page)).fetchone()
        if row is None:
            raise NotFoundError(f"no scanned page {page} of {source!r} in knowledge base {self.name!r}",
                                "page images are kept for images and scanned PDF pages only")
        return row[0]

    def stats(self) -> dict:
        with self.connect() as db:
            docs, chunks = db.execute("SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents").fetchone()
            faqs = db.execute("SELECT COUNT(*) FROM faqs").fetchone()[0]
        return {"name": self.name, "path": str(self.path), "encoder": self.encoder_name, "documents": docs,
                "chunks": chunks, "faqs": faqs, "bytes_on_disk": self.path.stat().st_size}
