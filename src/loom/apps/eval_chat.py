"""`loom eval chat MODEL --data FILE --metric M`: answer each example's last user turn and score the
answer against the reference assistant turn that follows it.

Every example is sent at once (up to the engine's batch size in flight), so a local model decodes
them as one continuous batch; greedy decoding, so a score is reproducible. Works on any chat model
(a base, a LoRA run, a remote engine): tuned against base is one comparison on the same file.

Metrics (answer vs reference, both folded: NFKC, lowercase, no whitespace, surrounding punctuation
stripped, so "Sport." = "sport" and "正面。" = "正面"):
    exact     1 if they are equal
    contains  1 if the reference appears inside the answer
    rouge     ROUGE-L F1 (characters for Chinese, words otherwise)
    chrf      sentence chrF (sacrebleu), 0-100 scaled to 0-1
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loom.backends.base import Request, Sampling
from loom.data.chat import read_conversations
from loom.errors import InputError
from loom.eval.text import rouge_l
from loom.registry import open_backend
from loom.text import fold

METRICS = ("exact", "contains", "rouge", "chrf")
_EDGES = " \t\n.,;:!?。，；：！？、\"'“”‘’()（）[]【】"


def _norm(text: str) -> str:
    return fold(text).strip(_EDGES)


def score(metric: str, answer: str, reference: str) -> float:
    a, r = _norm(answer), _norm(reference)
    if metric == "exact":
        return float(a == r)
    if metric == "contains":
        return float(bool(r) and r in a)
    if metric == "rouge":
        return rouge_l(answer, reference)
    if metric == "chrf":
        from sacrebleu.metrics import CHRF

        return CHRF().sentence_score(answer, [reference]).score / 100
    raise InputError(f"unknown metric {metric!r}", f"use one of: {', '.join(METRICS)}")


def split_examples(conversations: list[list[dict]]) -> list[tuple[list[dict], str]]:
    """(prompt messages up to the last user turn, the reference answer after it) per conversation."""
    out = []
    for conv in conversations:
        last = max(i for i, m in enumerate(conv) if m["role"] == "assistant")
        if last == 0 or conv[last - 1]["role"] != "user":
            continue
        out.append((conv[:last], conv[last]["content"]))
    return out


def evaluate_chat(model: str, data: Path, metric: str = "contains", limit: int = 0, max_tokens: int = 128,
                  max_batch: int = 16, device: str = "auto", progress: bool = True, backend=None) -> dict:
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}", f"use one of: {', '.join(METRICS)}")
    examples = split_examples(read_conversations(data).conversations)
    if limit:
        examples = examples[:limit]
    if not examples:
        raise InputError(f"{data} has no example ending in a user turn answered by the assistant",
                         "each row needs a user message followed by the reference assistant message")
    own = backend is None
    backend = backend or open_backend(model, max_batch=max_batch, max_queue=max(64, len(examples)), device=device)
    sampling = Sampling(max_tokens=max_tokens, temperature=0)
    t0 = time.perf_counter()

    def answer(example) -> str:
        return "".join(chunk.text for chunk in backend.stream(Request(sampling, messages=example[0])))

    try:
        from tqdm import tqdm

        with ThreadPoolExecutor(max_workers=max_batch) as pool:
            answers = list(tqdm(pool.map(answer, examples), total=len(examples), desc="eval chat", unit="ex",
                                disable=not progress, dynamic_ncols=True))
    finally:
        if own:
            backend.close()
    seconds = time.perf_counter() - t0
    results = [{"prompt": msgs[-1]["content"], "reference": ref, "answer": ans, metric: score(metric, ans, ref)}
               for (msgs, ref), ans in zip(examples, answers)]
    mean = sum(r[metric] for r in results) / len(results)
    return {metric: round(mean, 4), "metric": metric, "examples": len(results), "model": model, "data": str(data),
            "seconds": round(seconds, 2), "seconds_per_example": round(seconds / len(results), 3), "results": results}
