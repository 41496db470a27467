"""Instruction-tuning quality: for a ready instruction set, the base model vs the same model tuned on
the set's train split, both scored by `loom eval chat` on its held-out test split (same run, same
examples, greedy decoding).

Targets (issue 16): the tuned model gains >= 20 points on the set's exact/contains metric (bbc-topic
on smollm2, CPU, within 30 minutes of training); zh-sentiment-qa on qwen2.5-0.5b (a GPU or a long CPU
run) is compared with the best zh-sentiment classifier (accuracy 0.876, docs/classify.md).

Everything goes through the CLI (`loom datasets export`, `loom finetune sft`, `loom eval chat`), in a
LOOM_HOME of its own (the base's catalog entries are copied in when --home-from is given).

    python bench/sft_quality.py [--set bbc-topic] [--base smollm2] [--preset finetune/lora-smollm2]
                                [--max-steps 150] [--test 0] [--home-from ~/.loom]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLASSIFIER_BEST = {"zh-sentiment-qa": 0.876}  # tfidf+e5 accuracy on zh-sentiment's own 80/20 split (docs/classify.md)


def classifier_same_split(train: Path, test: Path, limit: int, env: dict) -> float:
    """The 0.876 comes from another split, so a Loom tfidf classifier is also fitted on this set's train
    split and scored on exactly the test examples the chat models answer: the like-for-like reference.
    Each review is the text after "评论：" in the user turn; its label is the assistant's answer."""
    import csv

    def to_csv(src: Path, n: int) -> Path:
        out = src.with_suffix(".csv")
        rows = [json.loads(line)["messages"] for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
        with out.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows((m[0]["content"].split("评论：", 1)[1], m[-1]["content"]) for m in rows[: n or None])
        return out

    loom("finetune", "classify", "--data", str(to_csv(train, 0)), "--name", "ref-tfidf", env=env)
    return json.loads(loom("eval", "classify", "ref-tfidf", "--data", str(to_csv(test, limit)), "--json", env=env))["accuracy"]


def loom(*args: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "loom", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"loom {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="bbc-topic")
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--preset", default="finetune/lora-smollm2")
    ap.add_argument("--max-steps", type=int, default=150, help="optimizer steps (batch 8: 1,200 examples)")
    ap.add_argument("--test", type=int, default=0, help="score the first N test examples (0 = all)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--home-from", default="", help="copy models.json/settings.json from this LOOM_HOME (for pulled bases)")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sftq-"))
    for name in ("models.json", "settings.json"):
        if args.home_from and (Path(args.home_from).expanduser() / name).is_file():
            shutil.copy(Path(args.home_from).expanduser() / name, home / name)
    env = dict(os.environ, LOOM_HOME=str(home))
    train, test = home / "train.jsonl", home / "test.jsonl"
    loom("datasets", "export", args.set, "--split", "train", "--out", str(train), env=env)
    loom("datasets", "export", args.set, "--split", "test", "--out", str(test), env=env)
    from loom.data.instructions import get

    metric = get(args.set).metric
    limit = ["--limit", str(args.test)] if args.test else []

    def score(model: str) -> dict:
        return json.loads(loom("eval", "chat", model, "--data", str(test), "--metric", metric, "--max-tokens", "32",
                               "--device", args.device, "--json", *limit, env=env))

    def also_contains(result: dict) -> str:
        """exact is strict about wording ("Business." passes, "It is business news." does not); contains shows
        how much of a gap is wording, from the same answers."""
        if metric != "exact":
            return ""
        from loom.apps.eval_chat import score as one

        return f", contains {sum(one('contains', r['answer'], r['reference']) for r in result['results']) / len(result['results']):.4f}"

    if args.set in CLASSIFIER_BEST:  # first: seconds, and a broken reference shows before an hour of training
        same = classifier_same_split(train, test, args.test, env)
        print(f"loom tfidf classifier, same train/test examples: accuracy {same:.4f}", flush=True)
    base = score(args.base)
    print(f"base {args.base}: {metric} {base[metric]:.4f}{also_contains(base)} on {base['examples']} test examples "
          f"({base['seconds']:.0f} s)", flush=True)
    print("  e.g. " + " | ".join(repr(r["answer"][:50]) for r in base["results"][:3]), flush=True)
    t0 = time.perf_counter()
    summary = json.loads(loom("finetune", "sft", "-c", args.preset, "--base", args.base, "--data", str(train), "--name", "tuned",
                              "--max-steps", str(args.max_steps), "--device", args.device, "--json", env=env))
    minutes = (time.perf_counter() - t0) / 60
    print(f"tuned: {summary['steps']} steps, {summary['method']}, {summary['examples']['tokens']:,} tokens in the data, "
          f"{minutes:.1f} min of training (model load included), last loss {summary['last'].get('loss', float('nan')):.3f}, "
          f"val loss {summary['last'].get('val_loss', float('nan')):.3f}", flush=True)
    tuned = score("tuned")
    gain = 100 * (tuned[metric] - base[metric])
    print(f"tuned: {metric} {tuned[metric]:.4f}{also_contains(tuned)} on {tuned['examples']} test examples")
    print(f"\n{args.set} on {args.base}: base {base[metric]:.4f} -> tuned {tuned[metric]:.4f} = {gain:+.1f} points "
          f"(target >= +20 within 30 min of training: {'PASS' if gain >= 20 and minutes <= 30 else 'FAIL'})")
    if args.set in CLASSIFIER_BEST:
        print(f"loom tfidf classifier on the same train/test examples: accuracy {same:.4f}; best zh-sentiment classifier "
              f"(tfidf+e5, its own split): {CLASSIFIER_BEST[args.set]:.3f}; base chat model {base[metric]:.4f}, "
              f"tuned chat model {tuned[metric]:.4f}")
    wrong = [r for r in tuned["results"] if r[metric] < 1][:5]
    for r in wrong:
        print(f"  missed: ref {r['reference']!r} got {r['answer'][:60]!r}")


if __name__ == "__main__":
    main()
