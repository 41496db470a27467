"""Chinese <-> English translation with a chat model, Markdown-aware and glossary-checked.

The text is cut into segments: fenced code blocks and blank lines are kept verbatim; headings and
list items keep their markers (#, -, 1.) and only their text is translated; inline `code` is swapped
for placeholders the model must copy. Segments travel in numbered batches (~800 characters), so
context is shared and calls are few; a batch whose answer does not come back with the same numbered
lines is redone one segment at a time. Glossary terms in a segment are given to the model, checked
in its answer, retried once, and finally substituted when the model kept the source term verbatim;
anything still missing is reported, never silently dropped.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loom.errors import InputError
from loom.text import is_chinese

LANGUAGES = {"zh": "Chinese (简体中文)", "en": "English"}
_BATCH_CHARS = 800
_MARKER = re.compile(r"^(\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s+)?)(.*)$")
_INLINE_CODE = re.compile(r"`[^`\n]+`")


@dataclass
class Segment:
    prefix: str  # kept verbatim: markers, or the whole line for code / blank lines
    text: str = ""  # to translate ("" = nothing to translate)
    codes: list[str] = field(default_factory=list)  # inline code spans behind placeholders
    result: str = ""

    def render(self) -> str:
        out = self.result
        for i, code in enumerate(self.codes):
            out = out.replace(f"⟦{i}⟧", code)
        return self.prefix + out


@dataclass
class Outcome:
    text: str
    glossary_checked: int = 0  # (segment, term) pairs that had to appear
    glossary_missing: list[tuple[str, str]] = field(default_factory=list)  # (source term, target term) still absent


def read_glossary(path: Path, target: str) -> dict[str, str]:
    """source term -> required translation; conflicting entries are an error naming both."""
    if not path.is_file():
        raise InputError(f"glossary not found: {path}", "pass a CSV with columns source,target")
    rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    if not rows or not {"source", "target"} <= set(rows[0]):
        raise InputError(f"{path.name} needs columns source and target; it has: {', '.join(rows[0]) if rows else '(none)'}",
                         "first line: source,target")
    terms: dict[str, str] = {}
    for n, row in enumerate(rows, 2):
        src, dst = (row.get("source") or "").strip(), (row.get("target") or "").strip()
        if not src or not dst:
            raise InputError(f"{path.name} line {n} has an empty source or target", "fill both columns")
        if src in terms and terms[src] != dst:
            raise InputError(f"{path.name} maps {src!r} to both {terms[src]!r} and {dst!r}", "keep one translation per term")
        terms[src] = dst
    return terms


def segments(text: str) -> list[Segment]:
    """One segment per line (the output joins them with newlines again)."""
    out, fence = [], None
    for line in text.split("\n"):
        stripped = line.strip()
        if fence is not None or stripped.startswith(("```", "~~~")):
            if fence is None:
                fence = stripped[:3]
            elif stripped.startswith(fence):
                fence = None
            out.append(Segment(line))  # code: verbatim
            continue
        if not stripped:
            out.append(Segment(line))
            continue
        prefix, body = _MARKER.match(line).groups()
        codes = _INLINE_CODE.findall(body)
        for i, code in enumerate(codes):
            body = body.replace(code, f"⟦{i}⟧", 1)
        out.append(Segment(prefix, body, codes))
    return out


def check_pair(text: str, to: str) -> str:
    if to not in LANGUAGES:
        raise InputError(f"unsupported target language {to!r}", f"use --to {' or --to '.join(LANGUAGES)} (Chinese <-> English)")
    if not text.strip():
        raise InputError("the text is empty", "pass a non-empty file or text")
    if "\x00" in text:
        raise InputError("the input looks binary (it contains NUL bytes)", "pass a text or Markdown file")
    source = "zh" if is_chinese(text) else "en"
    if source == to:
        raise InputError(f"the text is already in {LANGUAGES[to]}", f"translate it --to {'en' if to == 'zh' else 'zh'}")
    return source


def translate_stream(text: str, to: str, backend, glossary: dict[str, str] | None = None,
                     progress: bool = False) -> Iterator[str | Outcome]:
    """Yields the translated document in order, a batch of lines at a time (code and blank lines
    included), then the Outcome with the whole text and the glossary report."""
    from tqdm import tqdm

    source = check_pair(text, to)
    segs = segments(text)
    todo = [s for s in segs if s.text.strip()]
    outcome = Outcome("")
    bar = tqdm(total=len(todo), desc="translate", unit=" segments", disable=not progress)
    shown = 0  # segments already yielded

    def rendered(upto: int) -> str:
        return "\n".join(s.render() if s.text.strip() else s.prefix for s in segs[shown:upto])

    for batch in _batches(todo):
        _translate_batch(batch, source, to, backend, glossary or {})
        for seg in batch:
            _enforce(seg, source, to, backend, glossary or {}, outcome)
        bar.update(len(batch))
        last = segs.index(batch[-1]) + 1
        yield rendered(last) + "\n"
        shown = last
    bar.close()
    if shown < len(segs):
        yield rendered(len(segs))
    outcome.text = "\n".join(s.render() if s.text.strip() else s.prefix for s in segs)
    yield outcome


def translate(text: str, to: str, backend, glossary: dict[str, str] | None = None, progress: bool = False) -> Outcome:
    """The whole translation at once (see translate_stream)."""
    return [item for item in translate_stream(text, to, backend, glossary, progress) if isinstance(item, Outcome)][0]


def _batches(todo: list[Segment]) -> Iterator[list[Segment]]:
    batch, size = [], 0
    for seg in todo:
        if batch and size + len(seg.text) > _BATCH_CHARS:
            yield batch
            batch, size = [], 0
        batch.append(seg)
        size += len(seg.text)
    if batch:
        yield batch


def _prompt(lines: list[str], source: str, to: str, terms: dict[str, str], strict: bool = False) -> str:
    numbered = "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))
    rules = [f"Translate each numbered line from {LANGUAGES[source]} into {LANGUAGES[to]}.",
             "Answer with the same numbers, one line each, and nothing else.",
             "Copy placeholders like ⟦0⟧ unchanged."]
    if terms:
        rules.append("Use exactly these translations for these terms: " + "; ".join(f"{s} -> {t}" for s, t in terms.items()) + ".")
    if strict:
        rules.append("This is a retry: the required term translations above were missing. Include every one of them.")
    return " ".join(rules) + "\n\n" + numbered


def _ask(backend, prompt: str) -> str:
    from loom.backends.base import Sampling

    return backend.chat([{"role": "user", "content": prompt}], Sampling(max_tokens=1024, temperature=0)).text


def _parse(answer: str, count: int) -> list[str] | None:
    found = dict(re.findall(r"^\s*(\d+)[.)、:]\s*(.*)$", answer, flags=re.M))
    lines = [found.get(str(i), "").strip() for i in range(1, count + 1)]
    return lines if all(lines) else None


def _relevant(glossary: dict[str, str], text: str) -> dict[str, str]:
    return {s: t for s, t in glossary.items() if s.lower() in text.lower()}


def _translate_batch(batch: list[Segment], source: str, to: str, backend, glossary: dict[str, str]) -> None:
    terms = _relevant(glossary, " ".join(s.text for s in batch))
    lines = _parse(_ask(backend, _prompt([s.text for s in batch], source, to, terms)), len(batch)) if len(batch) > 1 else None
    if lines is None:  # one at a time: a single line always maps back
        lines = []
        for seg in batch:
            answer = _ask(backend, _prompt([seg.text], source, to, _relevant(glossary, seg.text)))
            lines.append((_parse(answer, 1) or [answer.strip()])[0])
    for seg, line in zip(batch, lines):
        seg.result = line


def _enforce(seg: Segment, source: str, to: str, backend, glossary: dict[str, str], outcome: Outcome) -> None:
    terms = _relevant(glossary, seg.text)
    outcome.glossary_checked += len(terms)
    missing = {s: t for s, t in terms.items() if t not in seg.result}
    if missing:  # retry this segment once with the rule stressed
        answer = _ask(backend, _prompt([seg.text], source, to, terms, strict=True))
        retry = (_parse(answer, 1) or [answer.strip()])[0]
        if sum(t in retry for t in terms.values()) > sum(t in seg.result for t in terms.values()):
            seg.result = retry
        missing = {s: t for s, t in terms.items() if t not in seg.result}
    for s, t in list(missing.items()):  # the model kept the source term: put the required translation in
        pattern = re.compile(re.escape(s), re.I)
        if pattern.search(seg.result):
            seg.result = pattern.sub(t, seg.result)
            del missing[s]
    outcome.glossary_missing += list(missing.items())
