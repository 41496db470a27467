"""Checkpoints: runs/NAME/checkpoints/step-NNNNNNNN/ = a complete Hugging Face model folder
(loadable by transformers as is) + trainer_state.pt (optimizer, RNG and data-sampler states of every
rank, step). Each is built under a temporary name and renamed, so a kill never leaves a partial
checkpoint; the newest `keep_last` are kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from loom import atomic
from loom.model.build import save_hf

_PREFIX = "step-"


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and (p / "trainer_state.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def save(run_dir: Path, step: int, model, tokenizer, trainer_state: dict, keep_last: int) -> Path:
    out = run_dir / "checkpoints" / f"{_PREFIX}{step:08d}"
    with atomic.folder_writer(out, replace=True) as tmp:
        save_hf(model, tokenizer, tmp)
        torch.save(trainer_state | {"step": step}, tmp / "trainer_state.pt")
    for old in checkpoint_dirs(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return out


def load_state(ckpt: Path) -> dict:
    # map to the CPU: a GPU run's checkpoint resumes anywhere; the optimizer moves its state to the weights' device
    return torch.load(ckpt / "trainer_state.pt", weights_only=True, map_location="cpu")


def load_model(ckpt: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)


def truncate_metrics(metrics_path: Path, step: int) -> None:
    """On resume, drop metric lines written after the checkpoint (the killed run's tail)."""
    if not metrics_path.is_file():
        return
    keep = [ln for ln in metrics_path.read_text(encoding="utf-8").splitlines() if ln and json.loads(ln)["step"] <= step]
    atomic.write_text(metrics_path, "".join(ln + "\n" for ln in keep))
