"""Content generation (stories, poems, blog posts, product copy) from prompt templates kept in a
data file (templates/write.yaml, Chinese and English), streamed, then checked against the request:
length within a tolerance and every required keyword present. A draft that fails is retried with a
new seed; after the last retry the failures are reported with the best draft, never hidden."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from loom.errors import InputError
from loom.text import cjk_count, is_chinese

KINDS = ("story", "poem", "blog", "copy")
LENGTHS = {"short": 80, "medium": 200, "long": 450}  # words (English) or characters (Chinese)
TOLERANCE = 0.5  # accepted length: target x (1 +/- TOLERANCE)


@functools.lru_cache(maxsize=1)
def templates() -> dict:
    return yaml.safe_load((Path(__file__).parent / "templates" / "write.yaml").read_text(encoding="utf-8"))


@dataclass
class Draft:
    text: str = ""
    attempt: int = 0  # which draft this is, from 1
    problems: list[str] = field(default_factory=list)
    drafts: int = 0  # drafts written in all (set on the one returned)


def target_length(length: str) -> int:
    if length in LENGTHS:
        return LENGTHS[length]
    if length.isdigit() and int(length) > 0:
        return int(length)
    raise InputError(f"unknown length {length!r}", f"use {', '.join(LENGTHS)} or a number of words (characters for Chinese)")


def prompt(kind: str, topic: str, tone: str | None, length: int, keywords: list[str], lang: str) -> str:
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}", f"use one of: {', '.join(KINDS)}")
    if not topic.strip():
        raise InputError("--topic is empty", "say what to write about, e.g. --topic 'a lighthouse keeper'")
    t = templates()
    clause = t["keywords_clause"][lang].format(keywords=("、" if lang == "zh" else ", ").join(keywords)) if keywords else ""
    return t[kind][lang].format(topic=topic, tone=tone or t["tones"][lang], length=length, keywords_clause=clause)


def measure(text: str, lang: str) -> int:
    """Length in the unit the request used: characters for Chinese, words otherwise."""
    return cjk_count(text) if lang == "zh" else len(text.split())


def problems(text: str, lang: str, length: int, keywords: list[str]) -> list[str]:
    found = []
    size = measure(text, lang)
    low, high = int(length * (1 - TOLERANCE)), int(length * (1 + TOLERANCE)) + 1
    if not low <= size <= high:
        unit = "characters" if lang == "zh" else "words"
        found.append(f"length {size} {unit}, wanted {low}-{high}")
    missing = [k for k in keywords if k.lower() not in text.lower()]
    if missing:
        found.append(f"missing keywords: {', '.join(missing)}")
    return found


def write(kind: str, topic: str, backend, tone: str | None = None, length: str = "short", keywords: list[str] | None = None,
          retries: int = 2, seed: int = 0, on_retry=None) -> Iterator[str | Draft]:
    """Yields text pieces of each attempt as they stream, and finally the chosen Draft."""
    from loom.backends.base import Sampling

    keywords = [k.strip() for k in (keywords or []) if k.strip()]
    lang = "zh" if is_chinese(topic + "".join(keywords)) else "en"
    size = target_length(length)
    request = prompt(kind, topic, tone, size, keywords, lang)
    best: Draft | None = None
    for attempt in range(retries + 1):
        pieces = []
        max_tokens = int(size * (2.5 if lang == "zh" else 2.0)) + 64  # room for the target length plus slack
        for chunk in backend.stream(_request(request, Sampling(max_tokens=max_tokens, temperature=0.8, seed=seed + attempt))):
            if chunk.text:
                pieces.append(chunk.text)
                yield chunk.text
        draft = Draft("".join(pieces).strip(), attempt + 1)
        draft.problems = problems(draft.text, lang, size, keywords)
        if best is None or len(draft.problems) < len(best.problems):
            best = draft
        if not draft.problems:
            break
        if on_retry and attempt < retries:
            on_retry(draft)
    best.drafts = attempt + 1
    yield best


def _request(text: str, sampling):
    from loom.backends.base import Request

    return Request(sampling, messages=[{"role": "user", "content": text}])
