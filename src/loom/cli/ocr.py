"""`loom ocr FILE...`: text out of images and scanned PDFs (loom.media), one file after another.

    loom ocr scan.pdf                         plain text, paragraphs in reading order
    loom ocr photo.png notice.jpg -f md       Markdown: a heading per file and page, tables as tables
    loom ocr contract.pdf -f json -p 2-3      JSON Lines: one object per file, lines with boxes and confidence
    loom ocr scan.pdf --engine tesseract      the tesseract program instead of the bundled models

Each file is printed as soon as it is read, so a long list streams. A file that cannot be read is
named on stderr and skipped; the exit code is then 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from loom.cli.output import console
from loom.errors import InputError, LoomError

FORMATS = ("text", "md", "json")


def ocr(
    files: list[Path] = typer.Argument(..., help="images (.png .jpg .webp .tiff .bmp .gif) and PDFs"),
    fmt: str = typer.Option("text", "--format", "-f", help="text | md | json (JSON Lines: one object per file)"),
    pages: str = typer.Option("", "--pages", "-p", help="PDF pages to read, e.g. 1-3,7 (default: all)"),
    engine: str = typer.Option("rapidocr", "--engine", "-e", help="rapidocr (bundled, Chinese + English) | tesseract (if installed)"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="reuse earlier results for unchanged files (LOOM_HOME/cache/ocr)"),
    progress: bool = typer.Option(True, "--progress/--quiet", help="a progress bar per PDF"),
) -> None:
    """Read the text of images and scanned PDFs (offline OCR: Chinese and English)."""
    from loom.media import read_pages

    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    wanted = parse_pages(pages)
    failed = 0
    for index, path in enumerate(files):
        try:
            if not path.is_file():
                raise InputError(f"{path} does not exist or is not a file", "check the path")
            read = read_pages(path.read_bytes(), path.name, wanted, engine, progress=progress and sys.stderr.isatty(),
                              cache=cache)
        except LoomError as e:
            failed += 1
            console.print(f"[bold red]error:[/bold red] {e.message}" + (f"\n[yellow]hint:[/yellow] {e.hint}" if e.hint else ""))
            continue
        sys.stdout.write(render(path, read, fmt, first=index == 0, many=len(files) > 1))
        sys.stdout.flush()
    if failed:
        raise typer.Exit(1)


def parse_pages(spec: str) -> list[int] | None:
    """"1-3,7" -> [1, 2, 3, 7]; "" -> None (all pages)."""
    if not spec.strip():
        return None
    out: list[int] = []
    try:
        for part in spec.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            if first < 1 or last < first or last - first > 100_000:
                raise ValueError
            out += range(first, last + 1)
    except ValueError as e:
        raise InputError(f"cannot read the page list {spec!r}", "write pages like 1-3,7 (1 is the first page)") from e
    return out


def render(path: Path, pages, fmt: str, first: bool = True, many: bool = False) -> str:
    if fmt == "json":
        return json.dumps({"file": str(path), "pages": [p.to_dict() for p in pages]}, ensure_ascii=False) + "\n"
    if fmt == "md":
        return ("" if first else "\n") + markdown(path, pages)
    header = ("" if first else "\n") + f"==> {path} <==\n" if many else ""
    return header + "\n\n".join(p.text for p in pages if p.text) + "\n"


def markdown(path: Path, pages) -> str:
    out = [f"# {path.name}\n"]
    for page in pages:
        if len(pages) > 1:
            out.append(f"## Page {page.number}\n")
        rows: list[list[str]] = []
        for para in page.paragraphs + [None]:
            if para is not None and para.kind == "row":
                rows.append(para.cells)
                continue
            if rows:
                out.append(_table(rows))
                rows = []
            if para is not None:
                out.append(_escape(para.text) + "\n")
    return "\n".join(out)


def _table(rows: list[list[str]]) -> str:
    width = max(len(r) for r in rows)
    cells = [[_escape(c).replace("|", "\\|") for c in r] + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    """OCR text is not Markdown: a line that starts with #, -, > or 1. would become structure."""
    import re

    return re.sub(r"^([#>\-+*]|\d+[.)])", r"\\\1", text)
