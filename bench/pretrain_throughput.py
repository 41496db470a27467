"""Benchmark Loom's training step against a hand-written PyTorch model of the same shape.

Same parameters, batch, sequence length, threads, hyper-parameters and compile setting (the
reference uses PyTorch's default AdamW, as nanoGPT does on CPU; Loom uses the fused kernel); the two are
measured in alternating rounds in one process so machine noise hits both. Also reports achieved
FLOP/s (6 * N * tokens/s, N = parameters) against a measured fp32 matmul peak on the same threads.

Targets (issue 2): ratio loom/reference >= 1.0 and >= 60% of the measured peak.

    python bench/pretrain_throughput.py [--threads 2] [--compile] [--rounds 5] [--steps 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from reference_gpt import RefLlama, make_optimizer as ref_optimizer, train_step as ref_step  # noqa: E402

from loom import runtime  # noqa: E402
from loom.config import ModelConfig, TrainConfig  # noqa: E402
from loom.model.build import build_model, count_params, resolve_shape  # noqa: E402
from loom.train import loop  # noqa: E402
from loom.train.batches import WindowSampler  # noqa: E402


def matmul_peak(threads: int, n: int = 1024, reps: int = 30) -> float:
    """Best-of fp32 GFLOP/s of an n x n matmul on `threads` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    return best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4, help="steps per round")
    ap.add_argument("--preset", default="small", help="Loom model preset (default: 6 layers, d=384)")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    mcfg = ModelConfig(preset=args.preset, max_seq_len=args.seq)
    tcfg = TrainConfig(batch_size=args.batch, seq_len=args.seq, max_steps=10_000, warmup_steps=10, compile=args.compile)
    shape = resolve_shape(mcfg)
    tokens = np.random.default_rng(0).integers(0, args.vocab, size=2_000_000).astype(np.uint16)

    loom_model = build_model(mcfg, args.vocab, eos_id=0, pad_id=1, seed=0)
    loom_opt = loop.make_optimizer(loom_model, tcfg)
    loom_train = torch.compile(loom_model) if args.compile else loom_model
    the_loop = loop.Loop(model=loom_train, raw_model=loom_model, optimizer=loom_opt,
                         train=WindowSampler(tokens, args.batch, args.seq, seed=1), val=None, cfg=tcfg,
                         runtime=runtime.choose("cpu", "fp32", args.threads), progress=False)

    torch.manual_seed(0)
    ref = RefLlama(args.vocab, shape["n_layer"], shape["d_model"], shape["n_head"], shape["d_ff"], args.seq)
    ref_opt = ref_optimizer(ref, tcfg)
    ref_train = torch.compile(ref) if args.compile else ref
    ref_sampler = WindowSampler(tokens, args.batch, args.seq, seed=1)

    n_loom, n_ref = count_params(loom_model), count_params(ref)
    print(f"shape {shape}, vocab {args.vocab}, batch {args.batch} x {args.seq}, threads {args.threads}, compile {args.compile}")
    print(f"params: loom {n_loom:,}  reference {n_ref:,}")
    assert n_loom == n_ref, "the two models must have the same parameter count"

    step = 0
    for _ in range(3):  # warm-up (and compilation)
        loop.train_step(the_loop, step)
        ref_step(ref_train, ref_opt, ref_sampler, tcfg, step, loop.lr_at)
        step += 1
    tok_per_step = args.batch * args.seq
    loom_rates, ref_rates = [], []
    for r in range(args.rounds):
        order = [("loom", loom_rates), ("ref", ref_rates)] if r % 2 == 0 else [("ref", ref_rates), ("loom", loom_rates)]
        for name, rates in order:
            t0 = time.perf_counter()
            for i in range(args.steps):
                if name == "loom":
                    loop.train_step(the_loop, step + i)
                else:
                    ref_step(ref_train, ref_opt, ref_sampler, tcfg, step + i, loop.lr_at)
            rates.append(tok_per_step * args.steps / (time.perf_counter() - t0))
        step += args.steps
    loom_tps, ref_tps = statistics.median(loom_rates), statistics.median(ref_rates)
    peak = matmul_peak(args.threads)
    achieved = 6 * n_loom * loom_tps / 1e9
    print(f"loom      {loom_tps:8.0f} tok/s  (rounds: {', '.join(f'{x:.0f}' for x in loom_rates)})")
    print(f"reference {ref_tps:8.0f} tok/s  (rounds: {', '.join(f'{x:.0f}' for x in ref_rates)})")
    print(f"achieved {achieved:.1f} GFLOP/s (6*N*tok/s) vs measured fp32 matmul peak {peak:.1f} GFLOP/s: {achieved / peak:.1%} of peak")
    print(f"targets: ratio >= 1.0 {'PASS' if loom_tps >= ref_tps else 'FAIL'}, >= 60% of peak {'PASS' if achieved >= 0.6 * peak else 'FAIL'}")
    print(f"ratio loom/reference tokens/s: {loom_tps / ref_tps:.3f}")


if __name__ == "__main__":
    main()
