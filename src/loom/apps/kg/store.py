"""A knowledge graph in one SQLite file, $LOOM_HOME/kg/NAME.sqlite: documents, entities (a canonical
name, a type and every alias that resolves to it), relations, and for each relation the evidence
that supports it (document, chunk, character span, sentence, confidence, extractor).

Incremental by construction: a document is added, replaced or removed in one transaction. Removing
it deletes its evidence and mentions; relations left with no evidence and entities left with neither
mentions nor relations go with them, so exactly the facts that only it supported disappear.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import time
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path

from loom import atomic, home
from loom.errors import NotFoundError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL, added REAL NOT NULL,
    origin TEXT NOT NULL DEFAULT 'file');  -- kb: mirrors a knowledge-base document (build keeps it in step)
CREATE TABLE IF NOT EXISTS entities (id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS aliases (
    key TEXT PRIMARY KEY, alias TEXT NOT NULL, entity_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS aliases_entity ON aliases (entity_id);
CREATE TABLE IF NOT EXISTS merges (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));
CREATE TABLE IF NOT EXISTS mentions (
    entity_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS mentions_entity ON mentions (entity_id);
CREATE INDEX IF NOT EXISTS mentions_doc ON mentions (doc_id);
CREATE TABLE IF NOT EXISTS relations (
    id INTEGER PRIMARY KEY, subject_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
    predicate TEXT NOT NULL, object_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
    UNIQUE (subject_id, predicate, object_id));
CREATE INDEX IF NOT EXISTS relations_object ON relations (object_id);
CREATE TABLE IF NOT EXISTS evidence (
    relation_id INTEGER NOT NULL REFERENCES relations(id) ON DELETE CASCADE,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, sentence TEXT NOT NULL,
    confidence REAL NOT NULL, extractor TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS evidence_relation ON evidence (relation_id);
CREATE INDEX IF NOT EXISTS evidence_doc ON evidence (doc_id);
"""


def key(name: str) -> str:
    """The lookup form of a name: NFKC, case-folded, spaces and punctuation dropped ("The Beatles" and
    "the beatles" are one entity; 北京 stays 北京)."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = re.sub(r"^the\s+", "", text)
    return re.sub(r"[\s\W_]+", "", text)


class Graph:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = home.kg_path(name)

    @classmethod
    def open(cls, name: str, create: bool = False) -> "Graph":
        graph = cls(name)
        if not graph.path.is_file():
            if not create:
                import difflib

                close = difflib.get_close_matches(name, list_names(), n=3)
                raise NotFoundError(f"no knowledge graph named {name!r}" + (f" (did you mean: {', '.join(close)}?)" if close else ""),
                                    "build one with `loom kg build KB` or `loom kg add NAME FILE`")
            graph.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic.guarded(graph.path), contextlib.closing(graph.connect()) as db:
                db.executescript(SCHEMA)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('id', ?)", (uuid.uuid4().hex,))
        return graph

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything in it lands, or nothing does."""
        with atomic.guarded(self.path):
            db = self.connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE SET "
                           "value = CAST(value AS INTEGER) + 1")
                db.commit()
            except BaseException:
                db.rollback()
                raise
            finally:
                db.close()

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.row_factory = sqlite3.Row
        return db

    def generation(self) -> tuple[str, int]:
        """(this file's id, how many writes it has seen): changes with every write, and a graph deleted
        and made again under the same name never looks like the old one to a cache."""
        with contextlib.closing(self.connect()) as db:
            rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('id', 'generation')").fetchall())
        return rows.get("id", ""), int(rows.get("generation", 0))

    # -- writing ------------------------------------------------------------------------------
    def entity(self, db: sqlite3.Connection, name: str, type_: str) -> int:
        """The id of the entity `name` resolves to (through its aliases and recorded merges), made if new."""
        k = key(name)
        row = db.execute("SELECT entity_id FROM aliases WHERE key = ?", (k,)).fetchone()
        if row:
            entity_id = row[0]
            if type_ != "OTHER":  # a typed mention beats the loose OTHER of the English fallback
                db.execute("UPDATE entities SET type = ? WHERE id = ? AND type = 'OTHER'", (type_, entity_id))
            return entity_id
        merged = db.execute("SELECT a.entity_id FROM merges m JOIN aliases a ON a.key = CASE WHEN m.a = ? THEN m.b ELSE m.a END "
                            "WHERE m.a = ? OR m.b = ?", (k, k, k)).fetchone()
        if merged:
            db.execute("INSERT INTO aliases VALUES (?, ?, ?)", (k, name, merged[0]))
            return merged[0]
        entity_id = db.execute("INSERT INTO entities (name, type) VALUES (?, ?)", (name, type_)).lastrowid
        db.execute("INSERT INTO aliases VALUES (?, ?, ?)", (k, name, entity_id))
        return entity_id

    def replace_document(self, db: sqlite3.Connection, source: str, text: str, origin: str = "file") -> int:
        """Drop what `source` supported (if anything) and register it afresh; returns its id."""
        self._drop(db, source)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return db.execute("INSERT INTO documents (source, sha256, added, origin) VALUES (?, ?, ?, ?)",
                          (source, digest, time.time(), origin)).lastrowid

    def remove_document(self, source: str) -> bool:
        with self.transaction() as db:
            return self._drop(db, source)

    def _drop(self, db: sqlite3.Connection, source: str) -> bool:
        row = db.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
        if row is None:
            return False
        db.execute("DELETE FROM documents WHERE id = ?", (row[0],))  # cascades to its mentions and evidence
        db.execute("DELETE FROM relations WHERE id NOT IN (SELECT relation_id FROM evidence)")
        db.execute("DELETE FROM entities WHERE id NOT IN (SELECT entity_id FROM mentions) AND id NOT IN "
                   "(SELECT subject_id FROM relations) AND id NOT IN (SELECT object_id FROM relations)")
        return True

    def add_fact(self, db, doc_id: int, chunk: int, subject: tuple[str, str], predicate: str, obj: tuple[str, str],
                 span: tuple[int, int], sentence: str, confidence: float, extractor: str) -> bool:
        """Record a fact and its evidence; False (nothing stored) for a self-loop, which says nothing."""
        if key(subject[0]) == key(obj[0]):
            return False
        s, o = self.entity(db, *subject), self.entity(db, *obj)
        if s == o:  # two names already merged into one entity
            return False
        db.execute("INSERT OR IGNORE INTO relations (subject_id, predicate, object_id) VALUES (?, ?, ?)", (s, predicate, o))
        rel = db.execute("SELECT id FROM relations WHERE subject_id = ? AND predicate = ? AND object_id = ?", (s, predicate, o)).fetchone()[0]
        db.execute("INSERT INTO evidence VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (rel, doc_id, chunk, span[0], span[1], sentence, confidence, extractor))
        return True

    def add_mention(self, db, doc_id: int, chunk: int, name: str, type_: str, start: int, end: int) -> None:
        db.execute("INSERT INTO mentions VALUES (?, ?, ?, ?, ?)", (self.entity(db, name, type_), doc_id, chunk, start, end))

    def merge(self, a: str, b: str) -> str:
        """Make two names one entity (e.g. 北京 and Beijing), now and for facts added later. Returns the
        canonical name kept."""
        with self.transaction() as db:
            return self.merge_in(db, a, b)

    def merge_in(self, db: sqlite3.Connection, a: str, b: str) -> str:
        """merge() inside a transaction the caller holds (a document's build records the pairs its text
        names, "北京（Beijing）")."""
        if key(a) == key(b):
            return a
        db.execute("INSERT OR IGNORE INTO merges VALUES (?, ?)", (key(a), key(b)))
        ids = [db.execute("SELECT entity_id FROM aliases WHERE key = ?", (key(n),)).fetchone() for n in (a, b)]
        if not all(ids) or ids[0][0] == ids[1][0]:
            keep = ids[0][0] if ids[0] else ids[1][0] if ids[1] else None
        else:
            keep, gone = ids[0][0], ids[1][0]
            for sql in ("UPDATE aliases SET entity_id = ? WHERE entity_id = ?", "UPDATE mentions SET entity_id = ? WHERE entity_id = ?"):
                db.execute(sql, (keep, gone))
            for column in ("subject_id", "object_id"):
                self._repoint(db, column, keep, gone)
            db.execute("DELETE FROM relations WHERE subject_id = object_id")  # a relation between the two names says nothing now
            db.execute("DELETE FROM entities WHERE id = ?", (gone,))
        return db.execute("SELECT name FROM entities WHERE id = ?", (keep,)).fetchone()[0] if keep else a

    @staticmethod
    def _repoint(db, column: str, keep: int, gone: int) -> None:
        """Move `gone`'s relations to `keep`; where `keep` already has the same relation, move the evidence."""
        other = "object_id" if column == "subject_id" else "subject_id"
        for rel in db.execute(f"SELECT id, predicate, {other} FROM relations WHERE {column} = ?", (gone,)).fetchall():
            twin = db.execute(f"SELECT id FROM relations WHERE {column} = ? AND predicate = ? AND {other} = ?",
                              (keep, rel["predicate"], rel[other])).fetchone()
            if twin:
                db.execute("UPDATE evidence SET relation_id = ? WHERE relation_id = ?", (twin[0], rel["id"]))
                db.execute("DELETE FROM relations WHERE id = ?", (rel["id"],))
            else:
                db.execute(f"UPDATE relations SET {column} = ? WHERE id = ?", (keep, rel["id"]))

    def remove(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------------------
    def stats(self) -> dict:
        with contextlib.closing(self.connect()) as db:
            count = lambda table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: E731
            return {"name": self.name, "documents": count("documents"), "entities": count("entities"),
                    "relations": count("relations"), "evidence": count("evidence"), "aliases": count("aliases")}


def list_names() -> list[str]:
    root = home.kg_dir()
    return sorted(p.stem for p in root.glob("*.sqlite")) if root.is_dir() else []
