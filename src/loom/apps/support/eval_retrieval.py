"""Retrieval quality on your own questions: recall@1/5/10, MRR and nDCG@10 for BM25 only, dense
only and hybrid, side by side.

The QA file (.jsonl or .csv) has a `question` and what should be found: `source` (a document's file
name or path; any of its chunks counts) and/or `contains` (text the right chunk contains)."""

from __future__ import annotations

import math
from pathlib import Path

from loom.apps.support.retrieve import MODES, Hit, search
from loom.apps.support.store import KnowledgeBase
from loom.errors import InputError

CUTOFFS = (1, 5, 10)


def read_qa(path: Path) -> list[dict]:
    from loom.data.sources import read_records

    if not path.is_file():
        raise InputError(f"QA file not found: {path}", "pass a .jsonl or .csv file with question and source/contains columns")
    rows = read_records(path)
    qa = [r for r in rows if isinstance(r, dict) and str(r.get("question") or "").strip() and (r.get("source") or r.get("contains"))]
    if not qa:
        columns = ", ".join(rows[0]) if rows and isinstance(rows[0], dict) else "(none)"
        raise InputError(f"{path.name} has no usable rows; columns: {columns}",
                         "each row needs 'question' and 'source' (file name) or 'contains' (text of the right chunk)")
    return qa


def relevant(hit: Hit, row: dict) -> bool:
    source, contains = row.get("source"), row.get("contains")
    if source and not (hit.source == source or Path(hit.source).name == Path(str(source)).name):
        return False
    return not contains or str(contains) in hit.text


def evaluate(kb: KnowledgeBase, qa: list[dict], modes=MODES, progress: bool = True) -> dict:
    from tqdm import tqdm

    results = {}
    for mode in modes:
        sums = {f"recall@{k}": 0.0 for k in CUTOFFS} | {"mrr": 0.0, "ndcg@10": 0.0}
        for row in tqdm(qa, desc=f"eval {mode}", disable=not progress):
            hits = search(kb, str(row["question"]), k=max(CUTOFFS), mode=mode)
            ranks = [i for i, h in enumerate(hits, 1) if relevant(h, row)]
            first = ranks[0] if ranks else None
            for k in CUTOFFS:
                sums[f"recall@{k}"] += 1.0 if first is not None and first <= k else 0.0
            sums["mrr"] += 1.0 / first if first else 0.0
            # nDCG@10 with binary gains; the ideal ranking puts every relevant hit found first.
            dcg = sum(1.0 / math.log2(r + 1) for r in ranks if r <= 10)
            ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(ranks), 10) + 1))
            sums["ndcg@10"] += dcg / ideal if ideal else 0.0
        results[mode] = {key: round(value / len(qa), 4) for key, value in sums.items()}
    return {"kb": kb.name, "questions": len(qa), "encoder": kb.encoder_name, "results": results}
