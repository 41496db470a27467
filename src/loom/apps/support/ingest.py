"""Writing a knowledge base: files, uploaded bytes and text become chunks, embeddings and index rows,
one document per transaction (old chunks out, new in), so a killed ingestion leaves every file
either fully old or fully new. Embeddings are computed before the transaction, so the write lock is
held only for the inserts. A mixin of KnowledgeBase (store.py)."""

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
from loom.data.readers import DOC_TYPES, FAQ_TYPES, SCAN_TYPES, Block, FaqPair, read_document, read_faq, read_scan, scan_blocks
from loom.data.words import search_terms
from loom.errors import InputError, LoomError, NotFoundError
from loom.media.audio import AUDIO_TYPES


class KBLocked(LoomError):
    """Another process holds the KB's write lock for too long."""



@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    chunks: int = 0
    seconds: float = 0.0



class Ingest:
    def add_paths(self, paths: list[str], progress: bool = True) -> AddReport:
        from tqdm import tqdm

        report, start = AddReport(), time.perf_counter()
        files = _expand(paths, report)
        bar = tqdm(files, desc=f"kb {self.name}", unit=" files", disable=not progress)
        for path in bar:
            try:
                self._add_file(path, report, progress=progress)
            except InputError as e:
                report.failed.append((str(path), e.message))
            bar.set_postfix(chunks=report.chunks)
        report.seconds = time.perf_counter() - start
        return report

    def add_text(self, source: str, text: str) -> AddReport:
        """Add content sent as text (the HTTP API): `source` names it and its suffix picks the reader
        (.md, .txt, .html, .csv/.jsonl FAQ; .pdf/.docx/image names are read as plain text); re-sending the
        same source replaces it."""
        suffix = Path(source).suffix.lower()
        as_text = suffix not in DOC_TYPES | FAQ_TYPES or suffix in SCAN_TYPES | AUDIO_TYPES | {".docx"}
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
        with atomic.guarded(home.tmp_root()), tempfile.TemporaryDirectory(dir=home.tmp_dir()) as tmp:
            stem = re.sub(r"[^\w\-]+", "_", Path(source.replace("\\", "/")).stem)[:80].strip("_") or "upload"
            path = Path(tmp) / f"{stem}{suffix}"  # read_* name the file in their messages
            path.write_bytes(data)
            try:
                self._add_file(path, report, source=source)
            except InputError as e:
                report.failed.append((source, e.message))
        return report

    def _add_file(self, path: Path, report: AddReport, source: str | None = None, progress: bool = False) -> None:
        source = source or str(path.resolve())
        from loom.data import readers

        data = path.read_bytes() if path.stat().st_size <= readers.MAX_FILE_BYTES else b""  # too big: read_* refuses it below
        digest = hashlib.sha256(data).hexdigest()
        with self.connect() as db:
            row = db.execute("SELECT sha256 FROM documents WHERE source = ?", (source,)).fetchone()
        if row and row[0] == digest:
            report.unchanged.append(source)
            return
        readers.check_content(path.name, data)
        previews: dict[int, tuple[int, int, bytes]] = {}
        if path.suffix.lower() in FAQ_TYPES:
            pairs = read_faq(path)
            chunks = [Chunk(i, "FAQ", f"Q: {p.question}\nA: {p.answer}") for i, p in enumerate(pairs)]
        elif path.suffix.lower() in AUDIO_TYPES:
            pairs, chunks = [], chunk_blocks(recording_blocks(path))
        elif path.suffix.lower() in SCAN_TYPES:
            pages = read_scan(path, progress)
            pairs, chunks = [], chunk_blocks(scan_blocks(pages))
            previews = _previews(data, path.name, pages, {c.page for c in chunks})
        else:
            pairs, chunks = [], chunk_blocks(read_document(path))
        if not chunks:
            scanned = path.suffix.lower() in SCAN_TYPES
            raise InputError(f"{path.name} has no text" + (" (OCR found none on any page)" if scanned else ""),
                             "check the file: a photo of text needs the text in focus and at least ~12 px high"
                             if scanned else "check the file")
        self.write_document(source, digest, len(data), chunks, pairs, previews)
        (report.replaced if row else report.added).append(source)
        report.chunks += len(chunks)

    def write_document(self, source: str, digest: str, size: int, chunks: list[Chunk], pairs: list[FaqPair],
                       previews: dict | None = None) -> None:
        """Replace `source`'s content in one transaction (embeddings computed first). `previews`:
        {page: (width, height, JPEG bytes)} of the scanned pages its chunks cite."""
        self._settle_encoder([c.text for c in chunks])
        vectors = self.embed([c.indexed for c in chunks])
        questions = self.embed([p.question for p in pairs]) if pairs else np.zeros((0, 1), np.float32)
        with atomic.guarded(self.path):
            self._insert_document(source, digest, size, chunks, pairs, vectors, questions, previews or {})

    def _insert_document(self, source, digest, size, chunks, pairs, vectors, questions, previews) -> None:
        db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now, not halfway through
            self._delete(db, source)
            doc_id = db.execute("INSERT INTO documents (source, sha256, kind, chunks, bytes, added) VALUES (?,?,?,?,?,?)",
                                (source, digest, "faq" if pairs else "doc", len(chunks), size, time.time())).lastrowid
            chunk_ids = []
            for chunk, vector in zip(chunks, vectors):
                locator = json.dumps(chunk.locator) if chunk.locator else None
                cid = db.execute("INSERT INTO chunks (doc_id, ordinal, title, text, embedding, locator) VALUES (?,?,?,?,?,?)",
                                 (doc_id, chunk.ordinal, chunk.title, chunk.text, vector.tobytes(), locator)).lastrowid
                db.execute("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", (cid, " ".join(search_terms(chunk.indexed))))
                chunk_ids.append(cid)
            for pair, vector, cid in zip(pairs, questions, chunk_ids):
                db.execute("INSERT INTO faqs (doc_id, chunk_id, question, answer, embedding) VALUES (?,?,?,?,?)",
                           (doc_id, cid, pair.question, pair.answer, vector.tobytes()))
            db.executemany("INSERT INTO pages (doc_id, page, width, height, jpeg) VALUES (?,?,?,?,?)",
                           [(doc_id, page, w, h, jpeg) for page, (w, h, jpeg) in sorted(previews.items())])
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


def _previews(data: bytes, name: str, pages, cited: set) -> dict[int, tuple[int, int, bytes]]:
    """JPEG previews (1400 px long side, ~100-200 KB) of the OCR-read pages that chunks were cut from."""
    from loom.media import preview

    return {p.number: (p.width, p.height, preview(data, name, p.number))
            for p in pages if p.source == "ocr" and p.number in cited}


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


_PARAGRAPH_PAUSE = 2.0  # seconds of silence between segments that end a paragraph of a transcript
_PARAGRAPH_CHARS = 300


def recording_blocks(path: Path) -> list[Block]:
    """A recording as paragraphs of its transcript (the default transcription model, `whisper-1`),
    each with the seconds it was spoken in, so a citation can say 00:03:12-00:03:40. A paragraph ends
    at a pause of 2 s or after ~300 characters."""
    from loom.apps import speech

    try:
        transcript = speech.transcribe_file(path)
    except NotFoundError as e:  # no transcription model here: this file fails with the fix, the others go on
        raise InputError(f"{path.name} is a recording and {e.message} ({e.hint})", e.hint) from e
    blocks: list[Block] = []
    group: list = []
    for seg in transcript.segments:
        if group and (seg.start - group[-1].end > _PARAGRAPH_PAUSE or sum(len(g.text) for g in group) > _PARAGRAPH_CHARS):
            blocks.append(Block((), speech.join_text(group), span=(group[0].start, group[-1].end)))
            group = []
        group.append(seg)
    if group:
        blocks.append(Block((), speech.join_text(group), span=(group[0].start, group[-1].end)))
    return blocks
