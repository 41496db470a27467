"""Summaries, extractive or abstractive.

Extractive needs no generative model:
  - lead: the first N sentences (the classic news baseline);
  - textrank: PageRank over a sentence graph weighted by word overlap (Mihalcea & Tarau 2004);
  - centroid (Loom's default): sentences embedded with the KB encoders (MiniLM, or e5 for Chinese),
    picked by closeness to the document's centroid with a redundancy penalty (MMR), plus a small
    bonus for early sentences, then printed in document order.
Abstractive asks a chat model; long inputs are summarised chunk by chunk and the partial summaries
are summarised again (map-reduce), so any length works.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from loom.text import sentences
from loom.data.words import search_terms
from loom.errors import InputError
from loom.text import is_chinese

METHODS = ("centroid", "textrank", "lead")
_PROMPT_TOKENS = 48  # instruction + chat template around each window
_ROUNDS = 4  # reduce rounds at most; an unhelpful model cannot loop forever


def split(text: str) -> list[str]:
    if not text or not text.strip():
        raise InputError("the text is empty", "pass a non-empty file or text")
    if "\x00" in text:
        raise InputError("the input looks binary (it contains NUL bytes)", "pass a text, Markdown or HTML file")
    return [s for s in sentences(" ".join(text.split()) if not is_chinese(text) else text.replace("\n", "")) if s.strip()]


def budget(count: int, n: int | None, ratio: float | None) -> int:
    if n is not None and ratio is not None:
        raise InputError("give --sentences or --ratio, not both", "drop one of them")
    if ratio is not None:
        if not 0 < ratio <= 1:
            raise InputError(f"--ratio must be in (0, 1], got {ratio}", "e.g. --ratio 0.2")
        return max(1, round(count * ratio))
    if n is not None and n < 1:
        raise InputError(f"--sentences must be at least 1, got {n}", "e.g. --sentences 3")
    return min(count, n or 3)


def lead(sents: list[str], k: int) -> list[int]:
    return list(range(min(k, len(sents))))


def textrank(sents: list[str], k: int, damping: float = 0.85) -> list[int]:
    words = [set(search_terms(s)) for s in sents]
    n = len(sents)
    weights = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            common = len(words[i] & words[j])
            if common and len(words[i]) > 1 and len(words[j]) > 1:
                weights[i, j] = weights[j, i] = common / (math.log(len(words[i])) + math.log(len(words[j])))
    out = weights.sum(axis=1, keepdims=True)
    transition = np.divide(weights, out, out=np.full_like(weights, 1.0 / n), where=out > 0)
    rank = np.full(n, 1.0 / n)
    for _ in range(50):  # power iteration; converges in a few dozen steps for documents
        rank = (1 - damping) / n + damping * transition.T @ rank
    return sorted(np.argsort(-rank, kind="stable")[:k].tolist())


def centroid(sents: list[str], k: int, redundancy: float = 0.5, position: float = 0.05) -> list[int]:
    from loom.apps.encoders import encoder

    backend = encoder("e5" if is_chinese("".join(sents)) else "minilm")
    vectors = np.asarray(backend.embed(sents).vectors, dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    center = vectors.mean(axis=0)
    center /= max(float(np.linalg.norm(center)), 1e-12)
    relevance = vectors @ center + position / (1.0 + np.arange(len(sents)))  # early sentences break ties
    chosen: list[int] = []
    while len(chosen) < min(k, len(sents)):
        overlap = (vectors @ vectors[chosen].T).max(axis=1) if chosen else np.zeros(len(sents))
        score = relevance - redundancy * overlap
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return sorted(chosen)


def extractive(text: str, n: int | None = None, ratio: float | None = None, method: str = "centroid") -> str:
    if method not in METHODS:
        raise InputError(f"unknown extractive method {method!r}", f"use one of: {', '.join(METHODS)}")
    sents = split(text)
    k = budget(len(sents), n, ratio)
    picked = {"lead": lead, "textrank": textrank, "centroid": centroid}[method](sents, k)
    return ("" if is_chinese(text) else " ").join(sents[i] for i in picked)


def abstractive(text: str, backend, n: int | None = None, ratio: float | None = None, max_tokens: int = 300) -> Iterator[str]:
    """Stream a summary written by `backend` (a chat model behind the contract). Inputs longer than
    the model's context are cut into windows that fit (counted with the model's tokenizer), each
    summarised, and the partial summaries summarised again (at most _ROUNDS times)."""
    from loom.backends.base import Request, Sampling

    sents = split(text)
    k = budget(len(sents), n, ratio)
    zh = is_chinese(text)
    context = backend.info().context_length or 4096
    answer = min(max_tokens, context // 4)
    room = max(16, context - answer - _PROMPT_TOKENS)  # tokens of text per window

    def ask(body: str, sentences_wanted: int) -> Request:
        prompt = (f"请用{sentences_wanted}句话概括下面的内容，只输出摘要：\n\n{body}" if zh else
                  f"Summarize the following text in {sentences_wanted} sentences. Write only the summary.\n\n{body}")
        return Request(Sampling(max_tokens=answer, temperature=0), messages=[{"role": "user", "content": prompt}])

    parts = _windows(sents, room, backend.count_tokens)
    for _ in range(_ROUNDS):  # map: summarise each window; reduce: summarise the summaries together
        if len(parts) == 1:
            break
        partial = ["".join(c.text for c in backend.stream(ask(part, max(2, k)))).strip() for part in parts]
        parts = _windows(split("\n".join(p for p in partial if p.strip()) or parts[0]), room, backend.count_tokens)
    for chunk in backend.stream(ask(parts[0], k)):
        if chunk.text:
            yield chunk.text


def _windows(pieces: list[str], room: int, count) -> list[str]:
    """Consecutive pieces joined into windows of at most `room` tokens (a longer piece is cut)."""
    windows, current, used = [], [], 0
    for piece in pieces:
        size = count(piece)
        while size > room:  # one sentence longer than a window: cut it by characters
            cut = max(1, len(piece) * room // size)
            windows.append(piece[:cut])
            piece = piece[cut:]
            size = count(piece)
        if current and used + size > room:
            windows.append(" ".join(current))
            current, used = [], 0
        current.append(piece)
        used += size
    return windows + ([" ".join(current)] if current else [])
