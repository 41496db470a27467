"""Instruction-tuning speed: Loom's `finetune_sft` against a plain transformers + peft loop written
here (the loop most scripts use: chat template, prompt tokens masked to -100, right padding with an
attention mask, `model(..., labels=labels).loss`, torch's default AdamW), on the same model (smollm2),
the same examples (bbc-topic, first batch_size * steps), the same LoRA settings, batch and max_len.

Each variant runs in its own subprocess (so peak RSS is its own), alternating over --rounds:
plain, loom (no packing), loom --packing. Tokens/s counts real tokens (no padding) over every step
but the first (warm-up). Target (issue 16): loom / plain >= 1.0 with and without packing.

    python bench/sft_throughput.py [--steps 8] [--batch-size 8] [--max-len 384] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LORA = {"r": 16, "alpha": 32, "dropout": 0.05}


def examples(n: int) -> list[list[dict]]:
    from loom.data.instructions import load

    return load("bbc-topic", "train", n)


def plain(args) -> float:
    """The reference loop: returns real tokens/s over steps 2..N."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loom.model.load import base_folder

    torch.manual_seed(0)
    folder = base_folder("smollm2")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(task_type=TaskType.CAUSAL_LM, r=LORA["r"], lora_alpha=LORA["alpha"],
                                             lora_dropout=LORA["dropout"], target_modules="all-linear"))
    rows = []
    for conv in examples(args.batch_size * args.steps):
        ids = tok(tok.apply_chat_template(conv, tokenize=False), add_special_tokens=False)["input_ids"][: args.max_len]
        n_prompt = len(tok(tok.apply_chat_template(conv[:-1], tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"])
        rows.append((ids, ([-100] * n_prompt + ids[n_prompt:])[: len(ids)]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    tokens, seconds = 0, 0.0
    for step in range(args.steps):
        batch = rows[step * args.batch_size:(step + 1) * args.batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [tok.pad_token_id] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        t0 = time.perf_counter()
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if step:
            seconds += time.perf_counter() - t0
            tokens += sum(len(ids) for ids, _ in batch)
    return tokens / seconds


def loom(args, packing: bool) -> float:
    """`finetune_sft` through its real entry point; tokens/s from its metrics (training time only)."""
    from loom.config import SFTConfig
    from loom.data.chat import write_conversations
    from loom.train.sft import finetune_sft

    data = Path(tempfile.mkdtemp(prefix="sftbench-")) / "data.jsonl"
    write_conversations(data, examples(args.batch_size * args.steps))
    cfg = SFTConfig(base="smollm2", lora_r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], lr=1e-4,
                    max_steps=args.steps if not packing else 10_000, epochs=1, batch_size=args.batch_size, max_len=args.max_len,
                    packing=packing, val_fraction=0.0, log_every=1, eval_every=100_000, save_every=100_000)
    if packing:  # one epoch of the same examples: fewer, fuller rows
        cfg = cfg.model_copy(update={"max_steps": 0})
    result = finetune_sft(str(data), "sft-throughput-bench", cfg, overwrite=True, progress=False)
    lines = [json.loads(x) for x in (Path(result["path"]) / "metrics.jsonl").read_text().splitlines()]
    from loom import catalog

    catalog.remove("sft-throughput-bench")
    shutil.rmtree(result["path"])
    steps = [r for r in lines if "tokens" in r][1:]  # drop the warm-up step
    return sum(r["tokens"] for r in steps) / sum(r["tokens"] / r["tokens_per_s"] for r in steps)


def child(args) -> None:
    # base folder (dequantised smollm2) built before timing anything
    from loom.model.load import base_folder

    base_folder("smollm2")
    rate = plain(args) if args.variant == "plain" else loom(args, packing=args.variant == "loom-pack")
    print(json.dumps({"variant": args.variant, "tok_s": rate, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=384, help="above every example's length: nothing is cut")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variant", default="")
    args = ap.parse_args()
    if args.variant:
        child(args)
        return
    results: dict[str, list[dict]] = {"plain": [], "loom": [], "loom-pack": []}
    for r in range(args.rounds):
        for variant in results:
            cmd = [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                   "--max-len", str(args.max_len)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            results[variant].append(json.loads(out))
            print(f"round {r + 1} {variant:10s} {results[variant][-1]['tok_s']:8.1f} tok/s  peak RSS {results[variant][-1]['peak_rss_mb']:.0f} MB", flush=True)
    med = {v: statistics.median(x["tok_s"] for x in runs) for v, runs in results.items()}
    rss = {v: max(x["peak_rss_mb"] for x in runs) for v, runs in results.items()}
    print(f"\nsmollm2 LoRA r{LORA['r']}, batch {args.batch_size}, max_len {args.max_len}, {args.steps} steps, median of {args.rounds}")
    for v in results:
        print(f"  {v:10s} {med[v]:8.1f} tok/s   peak RSS {rss[v]:.0f} MB")
    for v in ("loom", "loom-pack"):
        ratio = med[v] / med["plain"]
        print(f"ratio {v} / plain: {ratio:.3f}x (target >= 1.0): {'PASS' if ratio >= 1.0 else 'FAIL'}")


if __name__ == "__main__":
    main()
