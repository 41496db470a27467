"""Structure-following chunking: sections (heading paths) are never mixed in one chunk; inside a
section, paragraphs and sentences are packed up to `max_chars` (a standalone block, one line of a
plain-text list of statements, is a chunk of its own), and each chunk starts with the
last sentence(s) of the one before (`overlap` characters at most) so an answer cut at a boundary
still has its context. Sentence ends: . ! ? ; and Chinese 。！？；… (plus closing quotes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

from loom.data.readers import Block
from loom.text import sentences  # noqa: F401  (re-exported: chunks and answers split alike)

@dataclass
class Chunk:
    ordinal: int  # position in the document, from 0
    title: str  # heading path, "Returns > Refund times"
    text: str
    page: int | None = None  # scans and PDFs: the page the chunk is on (a chunk never spans pages)
    regions: list = field(default_factory=list)  # [x0, y0, x1, y1] page fractions of the paragraphs it holds
    scanned: bool = False  # read by OCR: the KB keeps a preview of its page
    span: tuple[float, float] | None = None  # recordings: the seconds of audio it was spoken in

    @property
    def locator(self) -> dict | None:
        """Where the chunk came from: on its page (citations draw it there) or in its recording (citations
        name the time range, 00:03:12-00:03:40); stored beside it."""
        if self.span is not None:
            from loom.media.audio import time_range

            return {"start": self.span[0], "end": self.span[1], "time": time_range(*self.span)}
        return {"page": self.page, "regions": self.regions, "scanned": self.scanned} if self.page is not None else None

    @property
    def indexed(self) -> str:
        """What retrieval sees: the heading path gives a chunk its topic."""
        return f"{self.title}\n{self.text}" if self.title else self.text


def _pieces(text: str, max_chars: int) -> list[str]:
    """Sentences, with any sentence longer than max_chars hard-split."""
    out = []
    for s in sentences(text):
        out += [s[i:i + max_chars] for i in range(0, len(s), max_chars)]
    return out


def chunk_blocks(blocks: list[Block], max_chars: int = 500, overlap: int = 100) -> list[Chunk]:
    chunks: list[Chunk] = []
    for headings, group in groupby(blocks, key=lambda b: b.headings):
        title = " > ".join(headings)
        current: list[str] = []
        size = 0
        fresh = 0  # sentences in `current` not yet emitted in an earlier chunk
        held: list[Block] = []  # the blocks whose text is in `current`
        for block in group:
            if block.standalone:  # a line of a list of unrelated statements: a chunk of its own
                if fresh:
                    chunks.append(_chunk(len(chunks), title, current, held))
                chunks.append(_chunk(len(chunks), title, [block.text], [block]))
                current, size, fresh, held = [], 0, 0, []
                continue
            for piece in _pieces(block.text, max_chars):
                if size + len(piece) > max_chars and fresh:
                    chunks.append(_chunk(len(chunks), title, current, held))
                    current, size = _tail(current, overlap), 0
                    size = sum(len(s) for s in current)
                    fresh = 0
                    held = held[-1:]  # the overlap comes from the latest block
                if not held or held[-1] is not block:
                    held.append(block)
                current.append(piece)
                size += len(piece)
                fresh += 1
            current.append("\n")  # paragraph boundary, kept in the chunk text
        if fresh:
            chunks.append(_chunk(len(chunks), title, current, held))
    return chunks


def _chunk(ordinal: int, title: str, parts: list[str], blocks: list[Block]) -> Chunk:
    page = blocks[0].page if blocks else None
    regions = [list(b.region) for b in blocks if b.region is not None and b.page == page]
    spans = [b.span for b in blocks if b.span is not None]
    span = (min(s for s, _ in spans), max(e for _, e in spans)) if spans else None
    return Chunk(ordinal, title, _join(parts), page, regions, any(b.ocr for b in blocks if b.page == page), span)


def _tail(parts: list[str], overlap: int) -> list[str]:
    """The last whole sentences of `parts` that fit in `overlap` characters."""
    kept, size = [], 0
    for s in reversed(parts):
        if s == "\n":
            continue
        if size + len(s) > overlap:
            break
        kept.insert(0, s)
        size += len(s)
    return kept


def _join(parts: list[str]) -> str:
    text = ""
    for p in parts:
        if p == "\n":
            text = text.rstrip() + "\n"
        elif text and not text.endswith("\n") and not (_is_cjk(text[-1]) and _is_cjk(p[0])):
            text += " " + p
        else:
            text += p
    return text.strip()


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef"
