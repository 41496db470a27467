"""Customer-service answer quality on bench/data/support: a shop FAQ (11 pairs in Chinese, 11 in
English), a Chinese smart-speaker manual and an English robot-vacuum manual, with 68 in-scope
questions (34 zh, 34 en; each with the phrase a right answer contains) and 32 out-of-scope ones.

Rows, each scored by `loom eval support` (loom.apps.support.eval_answers):
  loom extractive        calibrated hand-off (answerable.py), the one best passage
  fixed cosine (tuned)   the same answers with hand-off by one raw cosine threshold, the best of a grid
                         0.76..0.92 chosen on these very questions (so the peer is tuned on the test set:
                         the ratio understates Loom's advantage on unseen data)
  loom + MODEL           one generated sentence, checked against the extractive answer (--model, when pulled)
  minilm, English KB     the English half rebuilt under MiniLM with no setting changed: calibration
                         carries across encoders

Targets (issue 14): in-scope accuracy >= 0.9 with hand-off rate <= 0.1, out-of-scope hand-off recall
>= 0.9, citation correctness >= 0.95, per language. The figure printed as a ratio is the balanced score
(accuracy + out-of-scope recall) / 2 of Loom against the tuned fixed-threshold peer, same process.

    python bench/support_answers.py [--model qwen2.5-0.5b] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

DATA = Path(__file__).parent / "data" / "support"
TARGETS = {"accuracy": 0.9, "citation_correct": 0.95, "oos_handoff_recall": 0.9}
MAX_HANDOFF = 0.1


def build(name: str, files: list[Path], encoder: str):
    from loom.apps.support.store import KnowledgeBase

    kb = KnowledgeBase.create(name, encoder=encoder)
    report = kb.add_paths([str(f) for f in files], progress=False)
    assert not report.failed, report.failed
    return kb


def balanced(summary: dict) -> float:
    return (summary["accuracy"] + summary["oos_handoff_recall"]) / 2


def tuned_fixed_threshold(kb, qa, oos) -> tuple[float, dict]:
    from loom.apps.support.eval_answers import evaluate
    from loom.config import SupportConfig

    best = None
    for step in range(17):
        threshold = round(0.76 + 0.01 * step, 2)
        report = evaluate(kb, qa, oos, cfg=SupportConfig(handoff_below=threshold), progress=False)
        if best is None or balanced(report["overall"]) > balanced(best[1]["overall"]):
            best = (threshold, report)
    return best


def meets(summary: dict) -> bool:
    return all(summary[k] is None or summary[k] >= v for k, v in TARGETS.items()) and summary["handoff_rate"] <= MAX_HANDOFF


def show(label: str, report: dict) -> bool:
    ok = True
    for lang, s in [("all", report["overall"]), *report["by_language"].items()]:
        passed = meets(s)
        ok &= passed
        t = s["seconds_per_answer"]
        print(f"  {label:26} {lang:3}  accuracy {s['accuracy']:.3f}  citations {s['citation_correct']:.3f}  "
              f"hand-off in-scope {s['handoff_rate']:.3f}  OOS recall {s['oos_handoff_recall']:.3f}  "
              f"hand-off precision {s['handoff_precision']:.3f}  {t['mean']:.2f} s/answer (p95 {t['p95']:.2f})  "
              f"{'ok' if passed else 'below target'}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="also score answers written by this chat model (e.g. qwen2.5-0.5b, if pulled)")
    ap.add_argument("--json", help="write every report to this file")
    args = ap.parse_args()

    from loom import registry
    from loom.apps.support.eval_answers import evaluate, read_questions

    qa = read_questions(DATA / "qa.jsonl", need_answer=True)
    oos = read_questions(DATA / "oos.jsonl", need_answer=False)
    generator = None
    if args.model:  # opened before LOOM_HOME moves below: the model is read from the user's LOOM_HOME
        try:
            generator = registry.open_backend(args.model)
        except Exception as e:  # noqa: BLE001 - an unpulled model skips its row, with the reason
            print(f"skipping {args.model}: {e}")
    reports = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LOOM_HOME"] = tmp  # the benchmark's KBs never touch the user's
        kb = build("shop", sorted((DATA / "kb").iterdir()), "auto")
        print(f"KB: {kb.stats()['chunks']} chunks, encoder {kb.encoder_name}; {len(qa)} in-scope and {len(oos)} out-of-scope questions\n")
        reports["loom_extractive"] = evaluate(kb, qa, oos, progress=False)
        threshold, reports["fixed_cosine_tuned"] = tuned_fixed_threshold(kb, qa, oos)
        ok = show("loom extractive", reports["loom_extractive"])
        show(f"fixed cosine {threshold} (tuned)", reports["fixed_cosine_tuned"])
        if generator is not None:
            reports["loom_generated"] = evaluate(kb, qa, oos, generator, progress=True)
            ok &= show(f"loom + {args.model}", reports["loom_generated"])
            modes = reports["loom_generated"]["overall"]["modes"]
            print(f"    {args.model}: {modes.get('generated', 0)} generated answers shown, "
                  f"{reports['loom_generated']['overall']['fallbacks']} replaced by the extractive answer")
            generator.close()
        english = build("shop-en", [DATA / "kb" / "faq.csv", DATA / "kb" / "manual_en.md"], "minilm")
        en_qa, en_oos = [r for r in qa if r["lang"] == "en"], [r for r in oos if r["lang"] == "en"]
        reports["minilm_english"] = evaluate(english, en_qa, en_oos, progress=False)
        show("minilm, English KB", reports["minilm_english"])
    ratio = balanced(reports["loom_extractive"]["overall"]) / balanced(reports["fixed_cosine_tuned"]["overall"])
    print(f"\nbalanced score (accuracy + OOS recall) / 2: loom {balanced(reports['loom_extractive']['overall']):.3f}, "
          f"tuned fixed threshold {balanced(reports['fixed_cosine_tuned']['overall']):.3f}: ratio {ratio:.3f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, ensure_ascii=False, indent=1))
    print(f"{'PASS' if ok else 'FAIL'}: every Loom row meets the issue-14 targets in each language")


if __name__ == "__main__":
    main()
