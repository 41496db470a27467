"""SFT speed on one GPU (run by bench/gpu_check.sh): Loom's `loom finetune sft` against a plain
transformers loop on the same model shape, in the same run.

The model is LlamaForCausalLM in the SmolLM2-135M shape (30 layers, width 576, 9 heads / 3 KV heads,
vocabulary 49,152), built from its config with random weights: the speed of a step does not depend on
the weights' values, and no download is needed. The plain loop is the reference from issue 16: bf16
autocast, fused AdamW, batch 32 x 2048 tokens, every weight trained, eager and torch.compile'd
(measured there at 161k and 238k tok/s on one H200). Loom runs the same batch and length with packed
chat data (full and LoRA, eager and compiled) through its CLI; its tokens/s comes from metrics.jsonl
(training time only, the first two steps dropped). MFU = 6 * params * tok/s / peak, with the peak
from --peak-tflops (H200 dense bf16: 989).

    python bench/sft_gpu.py --tokenizer TOKENIZER_DIR [--device cuda] [--batch 32] [--len 2048] [--steps 12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, max_position_embeddings=8192, tie_word_embeddings=True, rms_norm_eps=1e-5)


def build(folder: Path, tokenizer_dir: str, small: bool) -> int:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    shape = dict(SMOLLM2_135M, num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=2,
                 num_key_value_heads=1) if small else SMOLLM2_135M
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**shape))
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model.config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def plain(folder: Path, device: str, batch: int, length: int, steps: int, compiled: bool) -> float:
    """The reference: full training, bf16 autocast, fused AdamW, random tokens; tok/s after 3 warm-up steps."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    step_fn = torch.compile(model) if compiled else model
    x = torch.randint(0, 2000, (batch, length), device=device)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    seconds = 0.0
    for i in range(steps + 3):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype == torch.bfloat16):
            loss = step_fn(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= 3:
            seconds += time.perf_counter() - t0
    return batch * length * steps / seconds


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def conversations(path: Path, tokens_needed: int) -> None:
    """Chat data from the bundled dialogues, repeated until there are enough tokens to fill the steps."""
    from loom.data.instructions import load

    convs, total = load("chatterbot-chat"), 0
    rows = []
    while total < tokens_needed:
        for c in convs:
            rows.append(json.dumps({"messages": c}, ensure_ascii=False))
            total += sum(len(m["content"]) for m in c) // 3 + 6 * len(c)  # rough tokens: enough is all that matters
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def loom(folder: Path, data: Path, device: str, batch: int, length: int, steps: int, lora: bool, compiled: bool) -> float:
    name = f"bench-{'lora' if lora else 'full'}-{'c' if compiled else 'e'}"
    cmd = [sys.executable, "-m", "loom", "finetune", "sft", "--base", str(folder), "--data", str(data), "--name", name,
           "--lora" if lora else "--no-lora", "--packing", "--batch-size", str(batch), "--max-len", str(length),
           "--max-steps", str(steps), "--device", device, "--json", "--eval-every", "100000", "--save-every", "100000", "--log-every", "1",
           "--compile" if compiled else "--no-compile"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if out.returncode != 0:
        raise SystemExit(f"loom finetune sft failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    run = Path(json.loads(out.stdout)["path"])
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in lines if "tokens" in r][2:]  # the first steps hold warm-up (and compilation)
    return sum(r["tokens"] for r in windows) / sum(r["tokens"] / r["tokens_per_s"] for r in windows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--len", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--small", action="store_true", help="a 2-layer model (CPU rehearsal)")
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    home = Path(os.environ["LOOM_HOME"])
    folder = home / "sft-base"
    params = build(folder, args.tokenizer, args.small)
    data = home / "sft-data.jsonl"
    conversations(data, args.batch * args.len * (args.steps + 2))
    compiles = [False] if args.no_compile else [False, True]
    mfu = lambda rate: 6 * params * rate / (args.peak_tflops * 1e12)  # noqa: E731
    print(f"model: SmolLM2-135M shape{' (small rehearsal)' if args.small else ''}, {params / 1e6:.1f}M params; "
          f"batch {args.batch} x {args.len}; device {args.device}")
    figures = {}
    for compiled in compiles:
        tag = "compiled" if compiled else "eager"
        figures[f"plain {tag}"] = plain(folder, args.device, args.batch, args.len, args.steps, compiled)
        figures[f"loom full {tag}"] = loom(folder, data, args.device, args.batch, args.len, args.steps + 2, False, compiled)
        figures[f"loom lora {tag}"] = loom(folder, data, args.device, args.batch, args.len, args.steps + 2, True, compiled)
    for label, rate in figures.items():
        print(f"  {label:20s} {rate:10.0f} tok/s   MFU {100 * mfu(rate):5.1f}%")
    best_plain = max(v for k, v in figures.items() if k.startswith("plain"))
    best_loom_full = max(v for k, v in figures.items() if k.startswith("loom full"))
    print(f"ratio loom full (best) / plain (best, same run): {best_loom_full / best_plain:.3f}x (goal >= 1.0)")


if __name__ == "__main__":
    main()
