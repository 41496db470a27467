"""Summaries against references: ROUGE-1/2/L for Lead-3, TextRank, Loom's extractive (centroid) and,
with a chat model, Loom's abstractive mode, in one table."""

from __future__ import annotations

from pathlib import Path

from loom.errors import InputError
from loom.eval.text import rouge


def read_pairs(path: Path, text_col: str = "text", summary_col: str = "summary") -> list[tuple[str, str]]:
    if not path.is_file():
        raise InputError(f"file not found: {path}", "pass a .jsonl or .csv with text and summary columns")
    from loom.data.sources import read_records

    rows = read_records(path)
    if rows and (text_col not in rows[0] or summary_col not in rows[0]):
        raise InputError(f"{path.name} needs columns {text_col!r} and {summary_col!r}; it has: {', '.join(rows[0])}",
                         "rename them or pass --text-col / --summary-col")
    pairs = [(str(r[text_col]), str(r[summary_col])) for r in rows if str(r.get(text_col) or "").strip() and str(r.get(summary_col) or "").strip()]
    if not pairs:
        raise InputError(f"{path.name} has no rows with both a text and a summary", "check the file")
    return pairs


def evaluate(pairs: list[tuple[str, str]], sentences: int = 3, backend=None, progress: bool = True) -> dict:
    from tqdm import tqdm

    from loom.apps import summarize

    systems = {"lead-3": lambda t: summarize.extractive(t, 3, None, "lead"),
               "textrank": lambda t: summarize.extractive(t, sentences, None, "textrank"),
               "loom-extractive": lambda t: summarize.extractive(t, sentences, None, "centroid")}
    if backend is not None:
        systems["loom-abstractive"] = lambda t: "".join(summarize.abstractive(t, backend, sentences))
    references = [ref for _, ref in pairs]
    results = {}
    for name, system in systems.items():
        outputs = [system(text) for text, _ in tqdm(pairs, desc=name, disable=not progress)]
        results[name] = {k: round(v, 4) for k, v in rouge(outputs, references).items()}
    return {"documents": len(pairs), "sentences": sentences, "results": results}
