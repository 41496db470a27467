"""`loom finetune sft`: the function signature is the CLI; flags override the YAML preset."""

from __future__ import annotations

from pathlib import Path

import typer

from loom.cli.output import console, kv_table, print_json


def finetune_sft(
    data: Path = typer.Option(None, "--data", "-d", help="conversations (.jsonl): OpenAI messages, Alpaca or ShareGPT rows"),
    name: str = typer.Option(..., "--name", "-n", help="run and model name"),
    base: str = typer.Option(None, help="chat model to tune: smollm2, qwen2.5-0.5b, a Loom run, an HF folder"),
    val: Path = typer.Option(None, "--val", help="validation conversations (default: a held-out share of --data)"),
    lora: bool = typer.Option(None, "--lora/--no-lora", help="LoRA adapters (default) or every weight"),
    qlora: bool = typer.Option(None, "--qlora", help="LoRA over a 4-bit base (CUDA + bitsandbytes)"),
    lora_r: int = typer.Option(None, help="adapter rank"),
    lora_alpha: int = typer.Option(None, help="adapter scale numerator (updates scaled by alpha / r)"),
    lora_dropout: float = typer.Option(None),
    target_modules: str = typer.Option(None, help="comma-separated layer names, or all-linear"),
    epochs: float = typer.Option(None, help="passes over the data"),
    max_steps: int = typer.Option(None, help="optimizer steps (overrides --epochs)"),
    lr: float = typer.Option(None, help="peak learning rate"),
    batch_size: int = typer.Option(None, help="sequences per micro-batch"),
    grad_accum: int = typer.Option(None, help="micro-batches per optimizer step"),
    max_len: int = typer.Option(None, help="tokens per example; longer ones are cut (and counted)"),
    packing: bool = typer.Option(None, "--packing/--no-packing", help="several examples per row, each attending only to itself"),
    template: str = typer.Option(None, help="chat template for a base without one: chatml"),
    device: str = typer.Option(None, help="auto | cpu | cuda | mps (auto: a GPU when there is one)"),
    dtype: str = typer.Option(None, help="auto | fp32 | bf16"),
    gradient_checkpointing: bool = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing"),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the decoder (worth it on GPUs)"),
    max_batch_tokens: int = typer.Option(None, help="most tokens per forward pass; larger micro-batches are split (0 = auto: "
                                         "fit a CPU's free memory)"),
    fsdp: bool = typer.Option(None, "--fsdp/--no-fsdp", help="under torchrun: shard the model across the processes (FSDP) instead of DDP"),
    eval_every: int = typer.Option(None), save_every: int = typer.Option(None), log_every: int = typer.Option(None),
    seed: int = typer.Option(None), threads: int = typer.Option(None),
    config: Path = typer.Option(None, "--config", "-c", help="YAML preset (configs/finetune/*.yaml)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last checkpoint"),
    overwrite: bool = typer.Option(False, help="replace an existing run of that name"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Instruction-tune a chat model on conversations; the result is served and evaluated by NAME."""
    from loom.config import SFTConfig, load
    from loom.train.sft import config_source, finetune_sft as run

    overrides = {"base": base, "lora": lora, "qlora": qlora, "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout,
                 "target_modules": [t.strip() for t in target_modules.split(",") if t.strip()] if target_modules else None,
                 "epochs": epochs, "max_steps": max_steps, "lr": lr, "batch_size": batch_size, "grad_accum": grad_accum,
                 "max_len": max_len, "packing": packing, "template": template, "device": device, "dtype": dtype,
                 "gradient_checkpointing": gradient_checkpointing, "compile": compile, "fsdp": fsdp, "max_batch_tokens": max_batch_tokens, "eval_every": eval_every, "save_every": save_every, "log_every": log_every,
                 "seed": seed, "threads": threads}
    cfg = load(SFTConfig, config_source(name, resume, str(config) if config else None, overwrite), overrides)
    summary = run(str(data) if data else None, name, cfg, str(val) if val else None, overwrite, resume,
                  progress=not (quiet or json_out))
    if summary["rank"] != 0:  # under torchrun, rank 0 reports
        return
    if json_out:
        print_json(summary)
        return
    ex, last = summary["examples"], summary["last"]
    kv_table(f"run {name}", {"base": summary["base"], "method": summary["method"], "device": summary["device"], "parallel": summary["parallel"],
                             "examples": f"{ex['kept']} kept, {summary['dropped_rows']} bad rows, {ex['truncated']} cut at --max-len, "
                                         f"{ex['dropped_too_long']} dropped (nothing to learn within --max-len)",
                             "tokens": f"{ex['tokens']:,} ({ex['learnt_tokens']:,} learnt), length p50 {ex['length_p50']} / p95 {ex['length_p95']} / max {ex['length_max']}",
                             "steps": summary["steps"], "train loss": last.get("loss"), "val loss": last.get("val_loss"),
                             "trainable params": f"{summary['trainable_params']:,}",
                             "peak memory": f"{summary['peak_memory_mb']:,.0f} MiB", "path": summary["path"]})
    console.print(f"chat with: loom chat {name}    evaluate: loom eval chat {name} --data FILE    serve: loom serve --preload {name}")
