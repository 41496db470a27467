"""Images and PDFs -> pages of lines and paragraphs in reading order, with where each came from.

    read_pages(data, name)      one Page per image, or per selected PDF page
    page.source                 "ocr" (an image, or a PDF page without a text layer) or "text" (a
                                PDF page's own text layer: no OCR, exact characters)

A PDF page uses its text layer when it has one (10+ characters) and OCR when it does not, so a mixed
PDF (typed pages and scanned ones) reads each page the right way. Boxes are kept per line and per
paragraph in the page's pixels (PDF pages: at `pdf_dpi`), with the page size, so a cited passage
can be drawn on the page.

OCR results are cached in LOOM_HOME/cache/ocr/, one file per (file's SHA-256, engine and version,
dpi), holding each page read so far: re-reading an unchanged scan costs a hash, not an OCR pass."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field

from loom.config import MediaConfig
from loom.errors import InputError
from loom.media.images import check_bytes, check_pixels, decode_image, settings
from loom.media.layout import Paragraph, paragraphs
from loom.media.ocr import Line, engine_version, recognise

_TEXT_LAYER_MIN_CHARS = 10  # fewer: a stamp or a page number on a scan, so the page is read by OCR
_CACHE_FORMAT = 2  # bump when reading (orientation, layout) changes, so cached pages are read again


@dataclass
class Page:
    number: int  # 1-based
    width: int  # pixels
    height: int
    source: str  # "ocr" | "text"
    paragraphs: list[Paragraph] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.paragraphs)

    @property
    def lines(self) -> list[Line]:
        return [ln for p in self.paragraphs for ln in p.lines]

    def to_dict(self, lines: bool = True) -> dict:
        out = {"page": self.number, "width": self.width, "height": self.height, "source": self.source,
               "text": self.text, "paragraphs": [p.to_dict() for p in self.paragraphs]}
        if lines:
            out["lines"] = [ln.to_dict() for ln in self.lines]
        return out


def page_count(data: bytes, name: str, limits: MediaConfig | None = None) -> int:
    kind = check_bytes(data, name, limits or settings())
    if kind != "pdf":
        return 1
    with _open_pdf(data, name) as pdf:
        return len(pdf)


def read_pages(data: bytes, name: str, pages: list[int] | None = None, engine: str | None = None,
               limits: MediaConfig | None = None, progress: bool = False, cache: bool = True) -> list[Page]:
    """Read an image or PDF given as bytes. `pages`: 1-based page numbers (None: all). Raises
    InputError for a damaged, oversized or over-long file, before anything is returned."""
    limits = limits or settings()
    engine = engine or limits.ocr_engine
    kind = check_bytes(data, name, limits)
    store = _Cache(data, engine, limits.pdf_dpi) if cache else None
    started = time.perf_counter()
    if kind != "pdf":
        if pages and pages != [1]:
            raise InputError(f"{name} is an image: it has page 1 only", "leave out --pages, or pass --pages 1")
        page = store.get(1) if store else None
        if page is None:
            page = _ocr_page(decode_image(data, name, limits), 1, engine)
            if store:
                store.put(page)
                store.flush()
        return [page]
    with _open_pdf(data, name) as pdf:
        total = len(pdf)
        _check_page_count(total, name, limits)
        wanted = _check_pages(pages, total, name)
        out = []
        from tqdm import tqdm

        try:
            for number in tqdm(wanted, desc=f"ocr {name}"[:40], unit=" page", disable=not progress or len(wanted) < 2):
                page = store.get(number) if store else None
                if page is None:
                    page = _pdf_page(pdf[number - 1], number, name, engine, limits)
                    if page.source == "ocr" and store:
                        store.put(page)
                out.append(page)
                elapsed = time.perf_counter() - started
                if elapsed > limits.seconds_per_document and number != wanted[-1]:
                    raise InputError(f"reading {name} took {elapsed:.0f} s, over the {limits.seconds_per_document:.0f} s "
                                     f"limit per document (stopped after page {number} of {total})",
                                     "split the PDF, or raise media.seconds_per_document in the serve config")
        finally:
            if store:
                store.flush()  # pages read before a failure are not read again
    return out


def _check_pages(pages: list[int] | None, total: int, name: str) -> list[int]:
    if not pages:
        return list(range(1, total + 1))
    bad = [p for p in pages if not 1 <= p <= total]
    if bad:
        raise InputError(f"{name} has pages 1-{total}; asked for {', '.join(map(str, bad[:5]))}", "choose pages inside the document")
    return sorted(set(pages))


_PDFIUM = threading.RLock()  # pdfium is not thread-safe: one document open at a time per process


@contextlib.contextmanager
def _open_pdf(data: bytes, name: str):
    import pypdfium2 as pdfium

    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            hint = "remove the password, then add it again" if "password" in str(e).lower() else "re-export or re-scan it"
            raise InputError(f"{name} is not a readable PDF ({e})", hint) from e
        try:
            yield pdf
        finally:
            pdf.close()


def _ocr_page(image, number: int, engine: str) -> Page:
    """OCR one page, the right way up. rapidocr reads first without its per-line 180-degree check
    (faster, and the check garbles some long English lines on upright pages). A page whose lines
    run down it is read turned both ways, and the more confident reading kept. A page read with low
    confidence (under 0.8, weighted by length: upright pages score 0.89-1.0 on bench/ocr.py's pages,
    upside-down ones 0.65) is read turned over; if that is no better, with the per-line check."""
    from PIL import Image

    started = time.perf_counter()
    flip = engine != "rapidocr"  # only rapidocr has the switch; tesseract reads its own way
    lines = recognise(image, engine, flip_lines=flip)
    if engine == "rapidocr" and _sideways(lines):
        turned = [image.transpose(Image.Transpose.ROTATE_270), image.transpose(Image.Transpose.ROTATE_90)]
        lines, image = max(((recognise(t, engine, flip_lines=False), t) for t in turned), key=lambda r: _sureness(r[0]))
    elif engine == "rapidocr" and lines and _sureness(lines) < 0.8:
        over = image.transpose(Image.Transpose.ROTATE_180)
        turned = recognise(over, engine, flip_lines=False)
        if _sureness(turned) >= 0.8:  # upside down: turned over it reads (the per-line check would too, in reverse order)
            lines, image = turned, over
        else:  # some lines each way up, or just a poor scan: the per-line check, or whichever reads best
            tries = [(lines, image), (turned, over), (recognise(image, engine), image)]
            lines, image = max(tries, key=lambda r: _sureness(r[0]))
    paras = paragraphs(lines)
    return Page(number, image.width, image.height, "ocr", paras, time.perf_counter() - started)


def _sureness(lines: list[Line]) -> float:
    """Mean confidence weighted by characters."""
    chars = sum(len(ln.text) for ln in lines)
    return sum(ln.confidence * len(ln.text) for ln in lines) / chars if chars else 0.0


def _sideways(lines: list[Line]) -> bool:
    """Most lines (3 or more) taller than twice their width: text running down the page."""
    tall = sum(ln.box[3] - ln.box[1] > 2 * (ln.box[2] - ln.box[0]) for ln in lines)
    return tall >= 3 and tall >= 0.6 * len(lines)


def _pdf_page(page, number: int, name: str, engine: str, limits: MediaConfig) -> Page:
    scale = limits.pdf_dpi / 72  # PDF units are points, 1/72 inch
    width_pt, height_pt = page.get_size()
    textpage = page.get_textpage()
    try:
        if len(textpage.get_text_range().strip()) >= _TEXT_LAYER_MIN_CHARS:
            lines = []
            for i in range(textpage.count_rects()):
                left, bottom, right, top = textpage.get_rect(i)
                text = textpage.get_text_bounded(left, bottom, right, top).strip()
                if text:  # PDF y runs upwards from the bottom; ours runs down from the top
                    lines.append(Line(" ".join(text.split()), (left * scale, (height_pt - top) * scale,
                                                               right * scale, (height_pt - bottom) * scale), 1.0))
            return Page(number, round(width_pt * scale), round(height_pt * scale), "text", paragraphs(lines))
    finally:
        textpage.close()
    check_pixels(round(width_pt * scale), round(height_pt * scale), f"{name} page {number}", limits)
    image = page.render(scale=scale).to_pil().convert("RGB")
    return _ocr_page(image, number, engine)


class _Cache:
    """LOOM_HOME/cache/ocr/<sha256>-<engine version>-<dpi>.json: {"pages": {"3": Page as a dict}}."""

    def __init__(self, data: bytes, engine: str, dpi: int) -> None:
        from loom import home

        key = f"{hashlib.sha256(data).hexdigest()}-{engine_version(engine)}-{dpi}-v{_CACHE_FORMAT}"
        self.path = home.cache_dir("ocr") / f"{key}.json"
        try:
            self.pages = json.loads(self.path.read_text(encoding="utf-8"))["pages"]
        except (OSError, ValueError, KeyError, TypeError):
            self.pages = {}
        self.unsaved, self.saved_at = False, time.monotonic()

    def get(self, number: int) -> Page | None:
        raw = self.pages.get(str(number))
        if raw is None:
            return None
        paras = [Paragraph(p["text"], tuple(p["box"]), p["kind"], p.get("cells", []),
                           [Line(ln["text"], tuple(ln["box"]), ln["confidence"]) for ln in p["lines"]])
                 for p in raw["paragraphs"]]
        return Page(number, raw["width"], raw["height"], raw["source"], paras, 0.0)

    def put(self, page: Page) -> None:
        """Keep a page; written out every 10 s at most (a long PDF interrupted keeps most of its pages)
        and at flush(), so a 500-page file is not rewritten 500 times."""
        self.pages[str(page.number)] = {
            "width": page.width, "height": page.height, "source": page.source,
            "paragraphs": [{**p.to_dict(), "lines": [ln.to_dict() for ln in p.lines]} for p in page.paragraphs]}
        self.unsaved = True
        if time.monotonic() - self.saved_at > 10:
            self.flush()

    def flush(self) -> None:
        from loom import atomic

        if not self.unsaved:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(self.path, json.dumps({"pages": self.pages}, ensure_ascii=False))
        except OSError:
            pass  # a cache that cannot be written only costs time
        self.unsaved, self.saved_at = False, time.monotonic()


def preview(data: bytes, name: str, number: int, max_side: int = 1400, limits: MediaConfig | None = None) -> bytes:
    """Page `number` as a JPEG no longer than max_side pixels on its long side: what a KB keeps of a
    scanned page so a cited passage can be shown where it is (regions are fractions, so any size fits)."""
    import io

    limits = limits or settings()
    if check_bytes(data, name, limits) == "pdf":
        with _open_pdf(data, name) as pdf:
            page = pdf[number - 1]
            width_pt, height_pt = page.get_size()
            image = page.render(scale=max_side / max(width_pt, height_pt)).to_pil().convert("RGB")
    else:
        image = decode_image(data, name, limits)
        image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70, optimize=True)
    return out.getvalue()


def inspect(data: bytes, name: str, limits: MediaConfig | None = None) -> int:
    """Every check that needs no OCR (bytes, format, pixels, decodability, page count), so a bad file
    is refused before anything is written. Returns the page count."""
    limits = limits or settings()
    if check_bytes(data, name, limits) != "pdf":
        decode_image(data, name, limits)
        return 1
    with _open_pdf(data, name) as pdf:
        total = len(pdf)
    _check_page_count(total, name, limits)
    return total


def _check_page_count(total: int, name: str, limits: MediaConfig) -> None:
    if total > limits.max_pages:
        raise InputError(f"{name} has {total:,} pages, over the {limits.max_pages:,}-page limit",
                         "split the PDF, or raise media.max_pages in the serve config")
