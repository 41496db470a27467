"""How good are the answers a customer sees? `loom eval support KB --qa FILE [--oos FILE]`.

The QA file (.jsonl/.csv) has a `question` and an `answer`: the phrase a right answer contains (a
fact such as "7天" or "3-5 business days"; several alternatives may be given as a list or joined
with " | "). Optional: `evidence` (text the cited passage must contain; default the answer phrase)
and `lang` (zh | en; detected when absent). The OOS file has questions the KB cannot answer (optional
`kind`: near = on the KB's subject but not in it, far = off the subject; recall is also given per kind).

Scored per language and overall:
    accuracy            in-scope questions answered and containing the phrase (a hand-off counts as wrong)
    citation_correct    answered in-scope questions whose cited passage contains the evidence
    handoff_rate        in-scope questions handed to a person
    oos_handoff_recall  out-of-scope questions handed to a person
    handoff_precision   hand-offs that were out-of-scope questions
Phrases are compared after Unicode NFKC folding, lowercasing, dash folding and whitespace removal, so
"3–5 个工作日" matches "3-5个工作日"; nothing looser, so a wrong number is never counted right.
Turns are not logged to the KB's conversation history.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from loom.apps.support.answer import SupportTurn
from loom.text import fold, language
from loom.apps.support.store import KnowledgeBase
from loom.config import SupportConfig
from loom.errors import InputError

normalise = fold  # the answer check and the evaluation compare phrases the same way


def read_questions(path: Path, need_answer: bool) -> list[dict]:
    from loom.data.sources import read_records

    what = "question and answer columns" if need_answer else "a question column"
    if not path.is_file():
        raise InputError(f"question file not found: {path}", f"pass a .jsonl or .csv file with {what}")
    rows = [r for r in read_records(path) if isinstance(r, dict) and str(r.get("question") or "").strip()]
    if need_answer:
        rows = [r for r in rows if _phrases(r.get("answer"))]
    if not rows:
        raise InputError(f"{path.name} has no usable rows", f"each row needs {what}")
    for r in rows:
        r["lang"] = r.get("lang") if r.get("lang") in ("zh", "en") else language(str(r["question"]))
    return rows


def _phrases(value) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(" | ")
    return [normalise(str(p)) for p in items if str(p).strip()]


def evaluate(kb: KnowledgeBase, qa: list[dict], oos: list[dict] | None = None, generator=None,
             cfg: SupportConfig | None = None, progress: bool = True, rule=None, reader=None) -> dict:
    """rule: an answerable.Rule other than the shipped one (the benchmark's cross-validation).
    reader: a reader.Reader that checks each passage answers before Loom answers from it."""
    from tqdm import tqdm

    cfg = cfg or SupportConfig()
    results = []
    for row in tqdm([*qa, *(oos or [])], desc=f"eval support {kb.name}", unit=" questions", disable=not progress):
        start = time.perf_counter()
        turn = SupportTurn(kb, str(row["question"]), [], cfg, generator, rule=rule, reader=reader)
        text = "".join(turn)
        results.append(_score(row, turn, text, time.perf_counter() - start))
    report = {"kb": kb.name, "encoder": kb.encoder_name, "model": generator.name if generator else None,
              "reader": reader.name if reader else None,
              "questions": len(qa), "oos_questions": len(oos or []), "overall": _summary(results)}
    report["by_language"] = {lang: _summary([r for r in results if r["lang"] == lang]) for lang in ("zh", "en")
                             if any(r["lang"] == lang for r in results)}
    report["errors"] = [r for r in results if r["in_scope"] and not r["correct"] or not r["in_scope"] and not r["handoff"]]
    report["results"] = results
    return report


def _score(row: dict, turn: SupportTurn, text: str, seconds: float) -> dict:
    in_scope = "answer" in row and bool(_phrases(row.get("answer")))
    out = {"question": row["question"], "lang": row["lang"], "in_scope": in_scope, "kind": row.get("kind"), "answer": text, "mode": turn.mode,
           "handoff": turn.handoff, "confidence": round(turn.confidence, 4), "seconds": round(seconds, 3),
           "fallback": turn.fallback, "draft": turn.draft, "reader": turn.reader_verdict()}
    if in_scope:
        phrases = _phrases(row["answer"])
        evidence = _phrases(row.get("evidence")) or phrases
        said = normalise(text)
        out["expected"] = row["answer"]
        out["correct"] = not turn.handoff and any(p in said for p in phrases)
        out["cited_right"] = any(any(e in normalise(c["text"]) for e in evidence) for c in turn.citations)
    return out


def _summary(results: list[dict]) -> dict:
    inside = [r for r in results if r["in_scope"]]
    outside = [r for r in results if not r["in_scope"]]
    answered = [r for r in inside if not r["handoff"]]
    handed = [r for r in results if r["handoff"]]
    seconds = sorted(r["seconds"] for r in results if not r["handoff"]) or [0.0]
    summary = {
        "in_scope": len(inside),
        "accuracy": _share(sum(r["correct"] for r in inside), len(inside)),
        "citation_correct": _share(sum(r["cited_right"] for r in answered), len(answered)),
        "handoff_rate": _share(len(inside) - len(answered), len(inside)),
        "out_of_scope": len(outside),
        "oos_handoff_recall": _share(sum(r["handoff"] for r in outside), len(outside)),
        # an OOS file may tag rows "kind": "near" (the KB's own subject, a fact it lacks) or "far"
        **{f"oos_{kind}_recall": _share(sum(r["handoff"] for r in rows), len(rows))
           for kind in ("near", "far") if (rows := [r for r in outside if r.get("kind") == kind])},
        "handoff_precision": _share(sum(not r["in_scope"] for r in handed), len(handed)),
        "modes": {m: sum(r["mode"] == m for r in results) for m in sorted({r["mode"] for r in results})},
        "fallbacks": sum(bool(r["fallback"]) for r in results),
        "seconds_per_answer": {"mean": round(statistics.fmean(seconds), 3), "p50": seconds[len(seconds) // 2],
                               "p95": seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))]},
    }
    return summary


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
