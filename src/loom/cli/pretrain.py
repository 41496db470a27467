"""`loom pretrain`: the function signature is the CLI; flags override the YAML preset."""

from __future__ import annotations

from pathlib import Path

import typer

from loom.cli.output import console, kv_table


def pretrain(
    data: str = typer.Option(None, "--data", "-d", help="a tokenized dataset (omit with --resume)"),
    name: str = typer.Option(..., "--name", "-n", help="run name under $LOOM_HOME/runs"),
    config: Path = typer.Option(None, "--config", "-c", help="YAML preset, e.g. configs/pretrain/tiny.yaml"),
    resume: bool = typer.Option(False, "--resume", help="continue the run from its latest checkpoint"),
    preset: str = typer.Option(None, help="model size: nano micro tiny small medium base"),
    max_steps: int = typer.Option(None, help="optimizer steps"),
    batch_size: int = typer.Option(None, help="sequences per micro-batch per process"),
    seq_len: int = typer.Option(None, help="tokens per sequence"),
    grad_accum: int = typer.Option(None, help="micro-batches per step"),
    lr: float = typer.Option(None, help="peak learning rate"),
    warmup_steps: int = typer.Option(None),
    dtype: str = typer.Option(None, help="auto | fp32 | bf16 (auto: bf16 on GPUs that have it, else fp32)"),
    device: str = typer.Option(None, help="auto | cpu | cuda | mps (auto: a GPU when there is one)"),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the model"),
    eval_every: int = typer.Option(None),
    save_every: int = typer.Option(None),
    threads: int = typer.Option(None, help="torch threads per process (0 = free cores)"),
    seed: int = typer.Option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Pretrain a Llama-style decoder on a tokenized dataset. Works under `torchrun --nproc_per_node N`."""
    from loom.config import PretrainConfig, load
    from loom.train.pretrain import config_source, pretrain as run

    overrides = {
        "model.preset": preset, "train.max_steps": max_steps, "train.batch_size": batch_size, "train.seq_len": seq_len,
        "train.grad_accum": grad_accum, "train.lr": lr, "train.warmup_steps": warmup_steps, "train.dtype": dtype, "train.device": device,
        "train.compile": compile, "train.eval_every": eval_every, "train.save_every": save_every,
        "train.threads": threads, "train.seed": seed,
    }
    cfg = load(PretrainConfig, config_source(name, resume, str(config) if config else None), overrides)
    result = run(data, name, cfg, resume=resume, progress=not quiet)
    if result.get("rank", 0) == 0:
        last = result["last"]
        kv_table(f"run {name}", {"params": f"{result['params'] / 1e6:.2f}M", "steps": result["steps"],
                                 "train loss": last.get("loss"), "val loss": last.get("val_loss"),
                                 "device": result["device"], "model": result["model"]})
        console.print(f"generate with: loom generate {name} --prompt \"...\"")
