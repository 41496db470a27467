"""Reading order: OCR lines (boxes in any order) -> paragraphs and table rows, as a person reads them.

The page is cut into horizontal sections, then each section into columns:
  1. Bands: lines are sorted top to bottom and cut wherever a horizontal strip of the page is empty
     (the y-projection has a gap). Two columns whose baselines line up give one band per text row.
  2. Each band's gaps: vertical strips at least 0.8 line heights wide that none of its lines cross.
  3. Sections: consecutive bands with the same gaps join (gaps that overlap, in the same number). A
     band without gaps joins when none of its lines reaches half a line height into the section's
     gaps (the last line of a column); a title over two columns crosses the gutter, so it is a section of its own, and so is
     a table under the text (its gaps differ).
  4. Columns: a section's lines split at its gaps. Text columns are read one after the other; a grid
     whose cells are short or ragged is a table, read row by row (cells left to right). Text columns:
     every column has 3+ lines, a median line at least 8 line heights long, and at least half of its
     lines ending within 4 line heights of the column's right edge (wrapped text does; cells do not).
  5. Paragraphs, inside a column: lines one under the other join until a gap taller than 0.7 line
     heights, an indented line, or a line that stopped short of the right edge (a paragraph's end).
Lines on one row (their vertical centres within half a line height) are read left to right.
Heights are medians over the page, so a scan's resolution does not matter. A skewed scan (the lines'
top edges at the same slope, 0.3 degrees or more) is laid out as if turned level: on a page tilted
4 degrees, a line's upright box is ~60 px taller than the line, and neighbours would merge into rows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median

from loom.media.ocr import Line
from loom.text import glue


@dataclass
class Paragraph:
    text: str
    box: tuple[float, float, float, float]  # the union of its lines' boxes, image pixels
    kind: str = "text"  # "text", or "row" for a table row
    cells: list[str] = field(default_factory=list)  # a row's cells, left to right
    lines: list[Line] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "text": self.text, "box": [round(v, 1) for v in self.box]}
        if self.cells:
            out["cells"] = self.cells
        return out


def paragraphs(lines: list[Line]) -> list[Paragraph]:
    """The page's paragraphs and table rows in reading order (boxes as found, on the page as it is)."""
    lines = [ln for ln in lines if ln.text.strip()]
    level = _levelled(lines)
    if level is None:
        return _layout(lines)
    original = {id(new): old for new, old in zip(level, lines)}
    out = []
    for para in _layout(level):
        own = [original[id(ln)] for ln in para.lines]
        out.append(Paragraph(para.text, _union(own), para.kind, para.cells, own))
    return out


def _levelled(lines: list[Line]) -> list[Line] | None:
    """The lines as if the page were turned level (their corners rotated back by the median slope of
    the long lines' top edges), or None when the page is level already or no corners are known."""
    slopes = [math.atan2(q[1][1] - q[0][1], q[1][0] - q[0][0]) for ln in lines if (q := ln.quad)
              and q[1][0] - q[0][0] > 2 * abs(q[3][1] - q[0][1])]
    if len(slopes) < 2 or abs(math.degrees(median(slopes))) < 0.3:
        return None
    turn = -median(slopes)
    cos, sin = math.cos(turn), math.sin(turn)
    out = []
    for ln in lines:
        corners = ln.quad or ((ln.box[0], ln.box[1]), (ln.box[2], ln.box[1]), (ln.box[2], ln.box[3]), (ln.box[0], ln.box[3]))
        xs = [x * cos - y * sin for x, y in corners]
        ys = [x * sin + y * cos for x, y in corners]
        out.append(Line(ln.text, (min(xs), min(ys), max(xs), max(ys)), ln.confidence))
    return out


def _layout(lines: list[Line]) -> list[Paragraph]:
    if not lines:
        return []
    h = median(ln.height for ln in lines)
    out: list[Paragraph] = []
    for section, gaps in _sections(_bands(lines), h):
        columns = _split(section, gaps)
        if len(columns) < 2:
            out += _column_paragraphs(section, h)
        elif _text_columns(columns, h):
            for column in columns:
                out += _column_paragraphs(column, h)
        else:
            out += [_row_paragraph(row) for row in _rows(section, h)]
    return out


def _bands(lines: list[Line]) -> list[list[Line]]:
    bands: list[list[Line]] = []
    bottom = None
    for line in sorted(lines, key=lambda ln: (ln.box[1], ln.box[0])):
        if bottom is None or line.box[1] > bottom:
            bands.append([])
            bottom = line.box[3]
        bands[-1].append(line)
        bottom = max(bottom, line.box[3])
    return bands


def _gaps(lines: list[Line], h: float) -> list[tuple[float, float]]:
    gaps, reach = [], None
    for x0, x1 in sorted((ln.box[0], ln.box[2]) for ln in lines):
        if reach is not None and x0 - reach >= 0.8 * h:
            gaps.append((reach, x0))
        reach = x1 if reach is None else max(reach, x1)
    return gaps


def _crosses(line: Line, gaps: list[tuple[float, float]], h: float) -> bool:
    """Reaches more than half a line height into a gap (a box a few pixels over the edge does not)."""
    return any(min(line.box[2], g1) - max(line.box[0], g0) > 0.5 * h for g0, g1 in gaps)


def _sections(bands: list[list[Line]], h: float) -> list[tuple[list[Line], list[tuple[float, float]]]]:
    sections: list[tuple[list[Line], list]] = []
    for band in bands:
        gaps = _gaps(band, h)
        if sections:
            lines, held = sections[-1]
            if not gaps and not any(_crosses(ln, held, h) for ln in band):
                lines += band
                continue
            if gaps and len(gaps) == len(held) and all(a0 < b1 and b0 < a1 for (a0, a1), (b0, b1) in zip(gaps, held)):
                lines += band
                sections[-1] = (lines, [(max(a0, b0), min(a1, b1)) for (a0, a1), (b0, b1) in zip(gaps, held)])
                continue
        sections.append((list(band), gaps))
    return sections


def _split(section: list[Line], gaps) -> list[list[Line]]:
    if len(section) < 2 or not gaps:
        return [section]
    columns: list[list[Line]] = [[] for _ in range(len(gaps) + 1)]
    for line in section:
        centre = (line.box[0] + line.box[2]) / 2
        columns[sum(centre > (g0 + g1) / 2 for g0, g1 in gaps)].append(line)
    return [c for c in columns if c]


def _text_columns(columns: list[list[Line]], h: float) -> bool:
    for column in columns:
        if len(column) < 3 or median(ln.box[2] - ln.box[0] for ln in column) < 8 * h:
            return False
        right = max(ln.box[2] for ln in column)  # ragged-right English ends up to a long word short of it
        if sum(ln.box[2] >= right - 4 * h for ln in column) < len(column) / 2:
            return False
    return True


def _rows(lines: list[Line], h: float) -> list[list[Line]]:
    """Lines grouped into rows (vertical centres within h/2), each row left to right."""
    rows: list[list[Line]] = []
    for line in sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        centre = (line.box[1] + line.box[3]) / 2
        if rows and abs(centre - _centre(rows[-1])) <= h / 2:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(r, key=lambda ln: ln.box[0]) for r in rows]


def _centre(row: list[Line]) -> float:
    return sum((ln.box[1] + ln.box[3]) / 2 for ln in row) / len(row)


def _column_paragraphs(lines: list[Line], h: float) -> list[Paragraph]:
    rows = _rows(lines, h)
    left = min(ln.box[0] for ln in lines)
    right = max(ln.box[2] for ln in lines)
    out: list[list[Line]] = []
    previous = None
    for row in rows:
        top, x0 = min(ln.box[1] for ln in row), row[0].box[0]
        new = (previous is None
               or top - max(ln.box[3] for ln in previous) > 0.7 * h  # a blank line's worth of gap
               or x0 - left > 1.5 * h and x0 - previous[0].box[0] > 1.5 * h  # an indented first line
               or max(ln.box[2] for ln in previous) < right - 3 * h)  # the line before stopped short
        if new:
            out.append([])
        out[-1] += row
        previous = row
    return [_text_paragraph(group) for group in out]


def _text_paragraph(lines: list[Line]) -> Paragraph:
    text = ""
    for line in lines:
        if text.endswith("-") and line.text[:1].islower():
            text = text[:-1] + line.text  # a word hyphenated at the line's end
        else:
            text = glue(text, line.text)
    return Paragraph(text, _union(lines), lines=lines)


def _row_paragraph(row: list[Line]) -> Paragraph:
    cells = [ln.text for ln in row]
    return Paragraph("\t".join(cells), _union(row), kind="row", cells=cells, lines=row)


def _union(lines: list[Line]) -> tuple[float, float, float, float]:
    return (min(ln.box[0] for ln in lines), min(ln.box[1] for ln in lines),
            max(ln.box[2] for ln in lines), max(ln.box[3] for ln in lines))
