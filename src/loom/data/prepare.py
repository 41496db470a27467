"""`loom data prepare`: stream raw files -> clean -> filter -> dedup -> documents.jsonl + report.json.

Cleaning and signatures run in worker processes on batches of documents; the parent keeps the
deduplication state (it must see documents in order) and writes output. The dataset folder is
built under a temporary name and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import functools
import json
import multiprocessing as mp
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xxhash
from tqdm import tqdm

from loom import atomic, home
from loom.config import DataConfig
from loom.data import clean, dedup
from loom.data.sources import expand_inputs, read_documents
from loom.errors import ExistsError, InputError, NotFoundError

BATCH_DOCS = 256
_SMALL_INPUT_BYTES = 16 * 2**20  # below this, process pools cost more than they save


@dataclass
class Cleaned:
    """One document after the worker: `reason` is None when it passed the filters. Everything the
    parent needs is precomputed here (output line, hashes, band keys), so the parent's per-document
    work is a few dictionary look-ups and one write."""

    bytes_in: int
    chars_in: int
    reason: str | None = None
    line: bytes = b""
    chars_out: int = 0
    exact: int = 0
    sig: np.ndarray | None = None
    band_keys: list[int] | None = None
    scripts: np.ndarray | None = None
    main_script: str = ""


_LETTER_SCRIPTS = [i for i, s in enumerate(clean.SCRIPTS) if s not in ("Common", "Other", "Emoji")]


@functools.lru_cache(maxsize=4)
def _band_hasher(num_perm: int, threshold: float) -> dedup.BandHasher:
    return dedup.BandHasher(num_perm, threshold)


def clean_batch(texts: list[str], cfg: DataConfig) -> list[Cleaned]:
    hasher = _band_hasher(cfg.num_perm, cfg.near_dup_threshold) if cfg.near_dedup else None
    return [clean_one(t, cfg, hasher) for t in texts]


def clean_one(raw: str, cfg: DataConfig, hasher: dedup.BandHasher | None = None) -> Cleaned:
    out = Cleaned(bytes_in=len(raw.encode("utf-8", "surrogatepass")), chars_in=len(raw))
    text = clean.normalize(raw, cfg.lowercase)
    if cfg.remove_stopwords:
        text = clean.remove_stopwords(text)
    if not text:
        out.reason = "empty"
        return out
    if len(text) > cfg.max_chars:
        out.reason = "too_long"
        return out
    cps = clean.codepoints(text)
    scripts = clean.script_counts(cps)
    letters = scripts[_LETTER_SCRIPTS]
    out.main_script = clean.SCRIPTS[_LETTER_SCRIPTS[int(letters.argmax())]] if letters.any() else "Common"
    if clean.length_units(text, scripts) < cfg.min_chars:  # script-aware: a Han character is not one Latin letter
        out.reason = "too_short"
        return out
    if clean.letter_ratio(scripts) < cfg.min_letter_ratio:
        out.reason = "junk_few_letters"
        return out
    if clean.repeated_line_ratio(text) > cfg.max_repeat_line_ratio:
        out.reason = "junk_repeated_lines"
        return out
    encoded = text.encode("utf-8", "surrogatepass")
    out.exact = xxhash.xxh3_64_intdigest(encoded)
    out.line = (json.dumps({"text": text}, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
    out.chars_out = len(text)
    out.scripts = scripts
    if hasher is not None:
        out.sig = dedup.signature(cps, cfg.shingle_size, cfg.num_perm)
        out.band_keys = hasher.keys(out.sig)
    return out


@dataclass
class Report:
    files: list[str]
    documents_in: int = 0
    documents_out: int = 0
    removed: Counter = field(default_factory=Counter)
    bytes_in: int = 0
    chars_in: int = 0
    chars_out: int = 0
    chars_by_script: np.ndarray = field(default_factory=lambda: np.zeros(len(clean.SCRIPTS), dtype=np.int64))
    documents_by_main_script: Counter = field(default_factory=Counter)
    removed_by_script: Counter = field(default_factory=Counter)  # (reason, main script) -> documents
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        mb = self.bytes_in / 1e6
        return {
            "files": self.files,
            "documents_in": self.documents_in,
            "documents_out": self.documents_out,
            "removed": dict(sorted(self.removed.items())),
            "bytes_in": self.bytes_in,
            "chars_in": self.chars_in,
            "chars_out": self.chars_out,
            "chars_by_script": {clean.SCRIPTS[i]: int(self.chars_by_script[i]) for i in np.argsort(-self.chars_by_script) if self.chars_by_script[i]},
            "documents_by_main_script": dict(self.documents_by_main_script.most_common()),
            "removed_by_script": {reason: {script: n for (r, script), n in self.removed_by_script.most_common() if r == reason}
                                  for reason in sorted(self.removed)},
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(mb / self.seconds, 2) if self.seconds > 0 else None,
        }


def _batches(paths: list[Path], cfg: DataConfig, shapes: dict | None = None) -> Iterator[list[str]]:
    """Batches of raw documents; `shapes`, if given, gets [documents, lines] per plain-text file."""
    batch: list[str] = []
    for path in paths:
        shape = [0, 0]
        if shapes is not None and path.suffix.lower() in (".txt", ".md", ".markdown", ".text", ""):
            shapes[path] = shape
        for text in read_documents(path, cfg.text_field, cfg.split, cfg.encoding):
            shape[0] += 1
            shape[1] += text.count("\n") + (not text.endswith("\n"))
            batch.append(text)
            if len(batch) == BATCH_DOCS:
                yield batch
                batch = []
    if batch:
        yield batch


def _worker_count(cfg: DataConfig, total_bytes: int) -> int:
    """0 = clean in this process. Auto: one worker per core for inputs big enough to pay for it."""
    if cfg.workers:
        return 0 if cfg.workers == 1 else cfg.workers
    if total_bytes < _SMALL_INPUT_BYTES:
        return 0
    return max(1, len(os.sched_getaffinity(0)))


def _cleaned_stream(paths: list[Path], cfg: DataConfig, workers: int, shapes: dict | None = None) -> Iterator[list[Cleaned]]:
    batches = _batches(paths, cfg, shapes)
    if workers == 0:
        for b in batches:
            yield clean_batch(b, cfg)
        return
    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg,)) as pool:
        # Results come back in input order (dedup keeps the first copy), and at most 2 batches per
        # worker are in flight, so memory stays flat when reading outpaces cleaning (Pool.imap
        # would queue the whole input).
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.apply_async(_clean_in_worker, (batch,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


_WORKER_CFG: DataConfig | None = None


def _init_worker(cfg: DataConfig) -> None:
    global _WORKER_CFG
    _WORKER_CFG = cfg
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the parent


def _clean_in_worker(texts: list[str]) -> list[Cleaned]:
    assert _WORKER_CFG is not None
    return clean_batch(texts, _WORKER_CFG)


def prepare(inputs: list[str], name: str, cfg: DataConfig, overwrite: bool = False, progress: bool = True) -> dict:
    """Build dataset NAME from the input files; returns the report (also saved as report.json)."""
    out_dir = home.dataset_dir(name)
    if out_dir.exists() and not overwrite:
        raise ExistsError(f"dataset {name!r} already exists at {out_dir}", "choose another --name or pass --overwrite")
    paths = expand_inputs(inputs)
    total_bytes = sum(p.stat().st_size for p in paths)
    report = Report(files=[str(p) for p in paths])
    exact_seen: set[int] = set()
    near = dedup.NearDuplicateIndex(cfg.num_perm, cfg.near_dup_threshold) if cfg.near_dedup else None
    start = time.perf_counter()
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc=f"prepare {name}", disable=not progress, dynamic_ncols=True)
    with atomic.folder_writer(out_dir, replace=overwrite) as tmp, open(tmp / "documents.jsonl", "wb") as out:
        shapes: dict[Path, list[int]] = {}
        for batch in _cleaned_stream(paths, cfg, _worker_count(cfg, total_bytes), shapes):
            for doc in batch:
                _account(doc, report, exact_seen, near, cfg, out)
            bar.update(sum(d.bytes_in for d in batch))
        bar.close()
        report.notes += _shape_notes(shapes, cfg)
        if report.documents_out == 0:
            raise InputError(
                f"no documents left after cleaning ({report.documents_in} read; removed: {dict(report.removed) or 'none'})",
                "check the inputs are text with content, or relax --min-chars and the junk filters",
            )
        report.seconds = time.perf_counter() - start
        result = report.as_dict()
        result["name"] = name
        result["config"] = cfg.model_dump()
        atomic.write_json(tmp / "report.json", result)
    return result


# A plain-text file whose lines average more than this per document was probably meant line by line.
_LINES_PER_DOC_HINT = 50


def _shape_notes(shapes: dict[Path, list[int]], cfg: DataConfig) -> list[str]:
    """Warnings for .txt files that became a handful of huge documents (no blank lines between them)."""
    notes = []
    for path, (docs, lines) in shapes.items():
        if cfg.split == "paragraph" and docs and lines >= 2 * _LINES_PER_DOC_HINT and lines / docs > _LINES_PER_DOC_HINT:
            notes.append(f"{path.name}: {lines:,} lines became {docs:,} document{'s' if docs > 1 else ''} (split={cfg.split}: "
                         "documents end at blank lines, and this file has few). For one sentence or record per line, "
                         "re-run with --split line; training still works either way (tokenize splits the token stream)")
    return notes


def _account(doc: Cleaned, report: Report, exact_seen: set[int], near, cfg: DataConfig, out) -> None:
    report.documents_in += 1
    report.bytes_in += doc.bytes_in
    report.chars_in += doc.chars_in
    if doc.reason is None and cfg.exact_dedup:
        if doc.exact in exact_seen:
            doc.reason = "exact_duplicate"
        else:
            exact_seen.add(doc.exact)
    if doc.reason is None and near is not None and near.seen(doc.sig, doc.band_keys):
        doc.reason = "near_duplicate"
    if doc.reason is not None:
        report.removed[doc.reason] += 1
        report.removed_by_script[(doc.reason, doc.main_script or "none")] += 1
        return
    report.documents_out += 1
    report.chars_out += doc.chars_out
    report.chars_by_script += doc.scripts
    report.documents_by_main_script[doc.main_script] += 1
    out.write(doc.line)


def documents_path(name: str) -> Path:
    """documents.jsonl of a prepared dataset; NotFoundError naming the existing ones if missing."""
    path = home.dataset_dir(name) / "documents.jsonl"
    if not path.is_file():
        root = home.datasets_dir()
        known = sorted(p.name for p in root.glob("*") if (p / "documents.jsonl").is_file()) if root.exists() else []
        raise NotFoundError(
            f"dataset {name!r} not found",
            f"run `loom data prepare FILE... --name {name}` first; existing datasets: {', '.join(known) or 'none'}",
        )
    return path


def iter_documents(path: Path) -> Iterator[str]:
    """Texts of a prepared dataset's documents.jsonl, in order."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]
