"""Readers: each yields (source, text) one document at a time, so memory stays flat.

Supported: .txt/.md (documents split by blank lines, lines, or whole files), .jsonl, .csv, .parquet
(a chosen text field), PDFs and images (.png .jpg .webp .tiff .bmp .gif: text layer or OCR, through
loom.media; split the same way, a paragraph being what the page layout says), and folders of those.
Binary files and undecodable bytes are errors that name the file, the position and the fix.
"""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from loom.errors import InputError
from loom.media.images import SCAN_TYPES

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}
SUFFIXES = TEXT_SUFFIXES | {".jsonl", ".csv", ".parquet"} | SCAN_TYPES


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders expanded to their supported files (sorted for reproducibility)."""
    if not inputs:
        raise InputError("no input files given", "pass one or more .txt/.md/.jsonl/.csv/.parquet files or folders")
    paths: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not found:
                raise InputError(f"folder {p} holds no supported files", f"supported: {', '.join(sorted(SUFFIXES))}")
            paths.extend(found)
        elif not p.exists():
            raise InputError(f"input file not found: {p}", "check the path (relative paths start at the current folder)")
        elif p.suffix.lower() not in SUFFIXES:
            raise InputError(f"unsupported file type {p.suffix or '(none)'!r}: {p}", f"use one of {', '.join(sorted(SUFFIXES))}")
        else:
            paths.append(p)
    for p in paths:
        _check_readable(p)
    return paths


def _check_readable(p: Path) -> None:
    try:
        with open(p, "rb") as f:
            head = f.read(8192)
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror}", "check the file's permissions") from e
    if p.suffix.lower() not in {".parquet"} | SCAN_TYPES and b"\x00" in head:
        raise InputError(f"{p} looks binary (it contains NUL bytes)", "pass a text file; convert documents to .txt first (UTF-16 text: convert it to UTF-8)")


def read_documents(path: Path, text_field: str = "text", split: str = "paragraph", encoding: str = "utf-8") -> Iterator[str]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _read_parquet(path, text_field)
        return
    if suffix in SCAN_TYPES:
        yield from _read_scan(path, split)
        return
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # tolerate a BOM
    try:
        codecs.lookup(encoding)
    except LookupError as e:
        raise InputError(f"unknown encoding {encoding!r}", "use a Python codec name such as utf-8, gb18030, latin-1") from e
    try:
        if suffix == ".jsonl":
            yield from _read_jsonl(path, text_field, encoding)
        elif suffix == ".csv":
            yield from _read_csv(path, text_field, encoding)
        else:
            yield from _read_text(path, split, encoding)
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path} is not valid {encoding} (byte {e.start} of a read block: {e.reason})",
            "convert it to UTF-8 (e.g. `iconv -f GB18030 -t UTF-8`) or pass --encoding with its real encoding",
        ) from e


def _read_scan(path: Path, split: str) -> Iterator[str]:
    from loom.media import read_pages

    pages = read_pages(path.read_bytes(), path.name, progress=sys.stderr.isatty())
    paragraphs = [p.text for page in pages for p in page.paragraphs if p.text.strip()]
    if split == "file":
        yield "\n\n".join(paragraphs)
    elif split == "line":
        yield from (ln.text for page in pages for ln in page.lines if ln.text.strip())
    else:
        yield from paragraphs


def _read_text(path: Path, split: str, encoding: str) -> Iterator[str]:
    with open(path, encoding=encoding, newline=None) as f:
        if split == "file":
            yield f.read()
            return
        if split == "line":
            for line in f:
                if line.strip():
                    yield line
            return
        block: list[str] = []
        for line in f:
            if line.strip():
                block.append(line)
            elif block:
                yield "".join(block)
                block = []
        if block:
            yield "".join(block)


def iter_json_objects(path: Path, encoding: str = "utf-8-sig") -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a .jsonl file; errors name the line."""
    with open(path, encoding=encoding) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno} is not valid JSON ({e.msg})", "each line of a .jsonl file must be one JSON object") from e
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno} is not a JSON object", "each line must look like {\"text\": \"...\"}")
            yield lineno, row


def read_records(path: Path, text: str | None = None) -> list[dict]:
    """All rows of a small .csv (header line) or .jsonl file as dicts; `text` is the file's content
    when the caller already decoded it. JSON errors name the line."""
    import csv
    import io

    if text is None:
        if not path.is_file():
            raise InputError(f"file not found: {path}", "check the path")
        text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path.name} line {lineno} is not JSON ({e.msg})", "one JSON object per line") from e
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _read_jsonl(path: Path, field: str, encoding: str) -> Iterator[str]:
    for lineno, row in iter_json_objects(path, encoding):
        if field not in row:
            raise InputError(
                f"{path}:{lineno} has no field {field!r}; fields present: {', '.join(map(str, row)) or '(none)'}",
                "choose the text field with --text-field",
            )
        value = row[field]
        if isinstance(value, str):
            yield value


def _read_csv(path: Path, field: str, encoding: str) -> Iterator[str]:
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding=encoding, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if field not in columns:
            raise InputError(
                f"{path} has no column {field!r}; columns: {', '.join(columns) or '(none)'}",
                "choose the text column with --text-field",
            )
        for row in reader:
            value = row.get(field)
            if value:
                yield value


def _read_parquet(path: Path, field: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow is a core dependency
        raise InputError("reading .parquet needs pyarrow", "pip install pyarrow") from e
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise InputError(f"{path} is not a readable parquet file ({e})", "check the file; re-export it if it is corrupt") from e
    names = pf.schema_arrow.names
    if field not in names:
        raise InputError(f"{path} has no column {field!r}; columns: {', '.join(names)}", "choose the text column with --text-field")
    for batch in pf.iter_batches(columns=[field], batch_size=1024):
        for value in batch.column(0).to_pylist():
            if isinstance(value, str):
                yield value
