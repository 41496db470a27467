"""Knowledge-base file readers: documents (.txt .md .html .pdf .docx, and images: .png .jpg .webp
.tiff .bmp .gif) become structured text, FAQ files (.csv .jsonl with question/answer columns) become
question-answer pairs.

Documents come back as a list of blocks (heading path, text) so chunking can follow structure.
PDFs and images go through loom.media: a PDF page's text layer where it has one, OCR where it does
not (scans, photos, screenshots); their blocks carry the page and the region they came from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from loom.errors import InputError
from loom.media.audio import AUDIO_TYPES
from loom.media.images import IMAGE_TYPES, SCAN_TYPES

DOC_TYPES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"} | IMAGE_TYPES | AUDIO_TYPES  # recordings: transcribed by the app
FAQ_TYPES = {".csv", ".jsonl"}
MAX_FILE_BYTES = 200 * 1024 * 1024  # larger files are refused (named and skipped), not read into memory
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@dataclass
class Block:
    headings: tuple[str, ...]  # e.g. ("Returns", "Refund times")
    text: str
    page: int | None = None  # PDFs and images: the 1-based page the text is on
    region: tuple[float, float, float, float] | None = None  # where on that page: x0, y0, x1, y1 as fractions
    ocr: bool = False  # read by OCR (not from a text layer)
    standalone: bool = False  # one line of a list of unrelated lines: a chunk of its own, never packed with others
    span: tuple[float, float] | None = None  # recordings: the seconds of audio the text was spoken in


@dataclass
class FaqPair:
    question: str
    answer: str


def read_text_file(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # Chinese files often come in GB encodings
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path} is neither UTF-8 nor GB18030 text", "convert it to UTF-8")


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path.name} is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit", "split it into smaller files")


def read_document(path: Path, progress: bool = False) -> list[Block]:
    suffix = path.suffix.lower()
    _check_size(path)
    if suffix in AUDIO_TYPES:
        raise InputError(f"{path.name} is a recording: it needs a transcription model to be read",
                         "add it to a knowledge base (loom kb add) or transcribe it first (loom transcribe)")
    if suffix in SCAN_TYPES:
        return scan_blocks(read_scan(path, progress))
    if suffix in (".md", ".markdown"):
        return _markdown_blocks(read_text_file(path))
    if suffix == ".txt":
        return _text_blocks(read_text_file(path))
    if suffix in (".html", ".htm"):
        return _html_blocks(read_text_file(path))
    if suffix == ".pdf":
        return _pdf_blocks(path)
    if suffix == ".docx":
        return _docx_blocks(path)
    raise InputError(f"unsupported file type {suffix or '(none)'} for {path.name}",
                     f"supported: {', '.join(sorted(DOC_TYPES | FAQ_TYPES))}")


_LINE_END = re.compile(r"[。！？!?.；;…)）\"”」]$")
_LABEL_CHARS = 40  # an unpunctuated line this short before a sentence line is its label ("营业时间")


def _text_blocks(text: str) -> list[Block]:
    """A plain-text file's paragraphs (blank-line separated). A paragraph that is a list of sentence
    lines (a shop notice, a store's rules, one fact per line) gives one standalone block per line:
    packed into one 500-character chunk, eight unrelated lines would all sit equally far from every
    question and the answer would start with whichever line came first."""
    blocks = []
    for paragraph in _paragraphs(text):
        items = _line_items(paragraph)
        blocks += [Block((), item, standalone=True) for item in items] if items else [Block((), paragraph)]
    return blocks


def _line_items(paragraph: str) -> list[str]:
    """The lines of `paragraph` when it is a list of statements: >= 3 lines, at least two thirds of
    them ending like a sentence, none longer than 300 characters. Hard-wrapped prose fails the second
    test (its lines end mid-sentence). A short unpunctuated line is kept as the label of the next."""
    lines = [ln.strip() for ln in paragraph.split("\n") if ln.strip()]
    ended = sum(bool(_LINE_END.search(ln)) for ln in lines)
    if len(lines) < 3 or ended * 3 < len(lines) * 2 or max(map(len, lines)) > 300:
        return []
    items, label = [], ""
    for line in lines:
        if not _LINE_END.search(line) and len(line) <= _LABEL_CHARS:
            label = f"{label}\n{line}" if label else line
            continue
        items.append(f"{label}\n{line}" if label else line)
        label = ""
    return items + ([label] if label else [])


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


def _markdown_blocks(text: str) -> list[Block]:
    blocks, headings, lines = [], [], []

    def flush():
        for p in _paragraphs("\n".join(lines)):
            blocks.append(Block(tuple(h for _, h in headings), p))
        lines.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        m = _MD_HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            headings = [(lv, h) for lv, h in headings if lv < level] + [(level, m.group(2))]
        else:
            lines.append(line)
    flush()
    return blocks


def _html_blocks(html: str) -> list[Block]:
    from html.parser import HTMLParser

    class Parser(HTMLParser):
        def __init__(self):
            super().__init__()
            self.blocks, self.headings, self.buf, self.skip, self.heading_level = [], [], [], 0, 0

        def handle_starttag(self, tag, attrs):
            if tag in ("script", "style", "nav", "footer"):
                self.skip += 1
            elif re.fullmatch(r"h[1-6]", tag):
                self.flush()
                self.heading_level = int(tag[1])
            elif tag in ("p", "li", "div", "br", "tr", "section", "article"):
                self.flush()

        def handle_endtag(self, tag):
            if tag in ("script", "style", "nav", "footer"):
                self.skip = max(0, self.skip - 1)
            elif re.fullmatch(r"h[1-6]", tag) and self.heading_level:
                title = " ".join("".join(self.buf).split())
                self.buf = []
                level, self.heading_level = self.heading_level, 0
                self.headings = [(lv, h) for lv, h in self.headings if lv < level] + ([(level, title)] if title else [])
            elif tag in ("p", "li", "div", "tr", "section", "article"):
                self.flush()

        def handle_data(self, data):
            if not self.skip:
                self.buf.append(data)

        def flush(self):
            if self.heading_level:
                return
            text = " ".join("".join(self.buf).split())
            self.buf = []
            if text:
                self.blocks.append(Block(tuple(h for _, h in self.headings), text))

    parser = Parser()
    parser.feed(html)
    parser.close()
    parser.flush()
    return parser.blocks


def check_content(name: str, data: bytes) -> None:
    """Refuse a file whose bytes are not what its name says, before anything is read or written: an
    image or PDF that is damaged, empty, too large or too long (loom.media's limits), or a text file
    that holds an image, a PDF or an archive (a wrong name or MIME type would ingest it as garbage)."""
    from loom.media import images, pages

    suffix = Path(name).suffix.lower()
    if suffix in SCAN_TYPES:
        pages.inspect(data, name)
        return
    if suffix in AUDIO_TYPES:  # the header checks; the frames are decoded (and checked) once, when transcribed
        from loom.media.audio import inspect_audio

        inspect_audio(data, name)
        return
    kind = images.sniff(data[:32])
    if kind and (suffix != ".docx" or kind != "a ZIP archive"):
        what = f"a {kind.upper()} image" if images.is_image_kind(kind) else "a PDF" if kind == "pdf" else kind
        fix = f"name it .{'jpg' if kind == 'jpeg' else kind}" if images.is_image_kind(kind) or kind == "pdf" else "send the document itself"
        raise InputError(f"{name} is named as {suffix or 'a file without a type'} but holds {what}", fix)


def read_scan(path: Path, progress: bool = False):
    """A PDF or an image as loom.media Pages (text layer or OCR, cached by the file's hash)."""
    from loom.media import pages

    return pages.read_pages(path.read_bytes(), path.name, progress=progress)


def scan_blocks(pages) -> list[Block]:
    """One block per paragraph or table row, each with its region (fractions of the page, for
    drawing). A PDF's pages are sections ("page 3"), so a chunk never spans two pages. Inside a page,
    a short line set in larger type (1.3x the page's median line height, 40 characters at most)
    is a heading: the blocks under it are its section, as a Markdown heading makes one."""
    from statistics import median

    blocks = []
    for page in pages:
        base = (f"page {page.number}",) if len(pages) > 1 or page.source == "text" else ()
        heading: tuple[str, ...] = ()
        pending = None  # a heading with nothing under it yet: kept as text if nothing follows
        heights = [ln.height for ln in page.lines if ln.height > 0]
        typical = median(heights) if heights else 0.0
        for para in page.paragraphs:
            x0, y0, x1, y1 = para.box
            region = tuple(round(v, 4) for v in (x0 / page.width, y0 / page.height, x1 / page.width, y1 / page.height))
            block = Block(base + heading, para.text, page.number, region, page.source == "ocr")
            if (para.kind == "text" and len(para.lines) == 1 and len(para.text) <= 40 and typical
                    and para.lines[0].height >= 1.3 * typical):
                heading, pending = (para.text,), block
                continue
            blocks.append(block)
            pending = None
        if pending is not None:
            blocks.append(pending)
    return blocks


def _docx_blocks(path: Path) -> list[Block]:
    try:
        import docx
    except ImportError as e:
        raise InputError("reading .docx files needs python-docx", "pip install python-docx") from e
    try:
        document = docx.Document(str(path))
    except Exception as e:  # python-docx raises several types for corrupt files
        raise InputError(f"{path.name} is not a readable .docx file ({type(e).__name__})", "re-save it from a word processor") from e
    blocks, headings = [], []
    for para in document.paragraphs:
        text = para.text.strip()
        style = (para.style.name or "") if para.style is not None else ""
        if not text:
            continue
        if style.startswith("Heading") and style[7:].strip().isdigit():
            level = int(style[7:])
            headings = [(lv, h) for lv, h in headings if lv < level] + [(level, text)]
        else:
            blocks.append(Block(tuple(h for _, h in headings), text))
    return blocks


_Q_COLS, _A_COLS = ("question", "q", "问题"), ("answer", "a", "答案")


def read_faq(path: Path) -> list[FaqPair]:
    _check_size(path)
    from loom.data.sources import read_records

    rows = read_records(path, read_text_file(path))
    columns = list(rows[0]) if rows else []
    q = next((c for c in columns if c.strip().lower() in _Q_COLS), None)
    a = next((c for c in columns if c.strip().lower() in _A_COLS), None)
    if q is None or a is None:
        raise InputError(f"{path.name} needs question and answer columns; it has: {', '.join(columns) or '(none)'}",
                         "name them 'question' and 'answer'")
    pairs = [FaqPair(str(r.get(q) or "").strip(), str(r.get(a) or "").strip()) for r in rows if isinstance(r, dict)]
    return [p for p in pairs if p.question and p.answer]
