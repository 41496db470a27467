"""`loom finetune sft`: conversations -> a tuned chat model, registered under its run name.

    read + encode (chat template, assistant-only labels) -> split -> load base (+ LoRA) -> loop -> save

runs/NAME/ holds config.yaml, data.json (what was kept and dropped), metrics.jsonl, loss.png,
val.jsonl (the held-out conversations, for `loom models merge`'s report), checkpoints/ while
training, and at the end model/: a peft adapter folder (LoRA) or a full HF folder. model/ is written
whole or not at all, and the run is registered only then, so `loom serve` can serve NAME right away.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import torch
from tqdm import tqdm

from loom import atomic, catalog, home, runtime
from loom.config import SFTConfig, load
from loom.data.chat import read_conversations, write_conversations
from loom.errors import ExistsError, InputError, NotFoundError
from loom.model.adapters import META
from loom.model.load import base_folder
from loom.tokenizer.chat import encode_all, ensure_template
from loom.train import curves, loop
from loom.train.pretrain import _distributed, pick_threads
from loom.train.sft_batches import collate, epoch_batches, learnt_tokens, make_rows, split_by_tokens
from loom.train.sft_model import batch_token_budget, latest_checkpoint, load_for_training, restore_checkpoint, save_checkpoint, save_model
from loom.train.sft_parallel import check_fsdp, full_weights, gradient_sync, wrap


def config_source(name: str, resume: bool, config_path: str | None, overwrite: bool = False) -> str | None:
    """On --resume the run's own config.yaml (flags given then apply on top), else the preset. Checks
    the run folder: nothing to resume, or a run already there."""
    run = home.run_dir(name)
    if resume:
        if not (run / "config.yaml").is_file():
            raise NotFoundError(f"run {name!r} has nothing to resume at {run}", "start it without --resume")
        return str(run / "config.yaml")
    if run.exists() and not overwrite:
        hint = "pass --overwrite to replace it, or choose another --name"
        if not (run / "model").exists() and latest_checkpoint(run) is not None:
            hint = "it was interrupted: pass --resume to continue from its last checkpoint, " + hint
        raise ExistsError(f"run {name!r} already exists at {run}", hint)
    return config_path


def _split(conversations: list, cfg: SFTConfig) -> tuple[list, list]:
    order = list(range(len(conversations)))
    random.Random(cfg.seed).shuffle(order)
    n_val = min(cfg.val_max, int(len(order) * cfg.val_fraction)) if len(order) >= 20 else 0
    val = [conversations[i] for i in sorted(order[:n_val])]
    return [conversations[i] for i in sorted(order[n_val:])], val


def finetune_sft(data_path: str | None, name: str, cfg: SFTConfig | None = None, val_path: str | None = None,
                 overwrite: bool = False, resume: bool = False, progress: bool = True) -> dict:
    # --- setup: data ---------------------------------------------------------------------------
    run = home.run_dir(name)
    source = config_source(name, resume, None, overwrite)
    catalog.check_run_name(name, run / "model")
    if overwrite and not resume and run.exists():
        shutil.rmtree(run)
        if name in {m.name for m in catalog.list_models()}:
            catalog.remove(name)  # registered again when the new run is saved
    cfg = cfg or load(SFTConfig, source)
    check_fsdp(cfg, int(os.environ.get("WORLD_SIZE", "1")))
    info = json.loads((run / "data.json").read_text(encoding="utf-8")) if resume else {}
    data_path = data_path or info.get("data")
    if not data_path:
        raise InputError("no training data given", "pass --data FILE.jsonl (messages, alpaca or sharegpt rows)")
    data = read_conversations(data_path)
    train_conv, val_conv = (data.conversations, read_conversations(val_path).conversations) if val_path else _split(data.conversations, cfg)
    base_path = base_folder(cfg.base)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    added = ensure_template(tokenizer, cfg.template, cfg.base)
    train_ex, report = encode_all(tokenizer, train_conv, cfg.max_len)
    val_ex, val_report = encode_all(tokenizer, val_conv, cfg.max_len)
    if not train_ex:
        raise InputError(f"no training example has an assistant token within --max-len {cfg.max_len}", "raise --max-len")

    # --- setup: model, device, optimizer -----------------------------------------------------
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    rt = runtime.choose(cfg.device, cfg.dtype, pick_threads(cfg.threads, world_env)).apply()
    if cfg.qlora and rt.kind != "cuda":
        raise InputError(f"--qlora needs a CUDA GPU (4-bit bitsandbytes kernels); this run is on {rt.device}",
                         "drop --qlora to train LoRA on fp32 weights, or run on a machine with an NVIDIA GPU")
    rank, world = _distributed(rt.ddp_backend)
    torch.manual_seed(cfg.seed)
    model = load_for_training(base_path, tokenizer, added, cfg, rt)
    budget = batch_token_budget(model, cfg, rt, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    loss_module, train_model = wrap(model, rt, world, cfg.fsdp)  # before the optimizer: FSDP replaces the parameters
    rows = make_rows(train_ex, cfg.max_len, cfg.packing)
    batches_per_epoch = max(1, len(rows) // (cfg.batch_size * world) if world > 1 else math.ceil(len(rows) / cfg.batch_size))
    steps_per_epoch = max(1, batches_per_epoch // cfg.grad_accum)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    warmup = int(total * cfg.warmup_ratio)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=rt.kind in ("cpu", "cuda"))
    start = 0
    ckpt = latest_checkpoint(run) if resume else None
    if ckpt is not None:
        start = restore_checkpoint(ckpt, model, optimizer)
    elif resume:
        raise NotFoundError(f"run {name!r} has no checkpoint to resume from", "start it again with --overwrite")
    if rank == 0:
        _write_run_files(run, cfg, data_path, data, report, val_report, len(rows), total, val_conv, start)

    def log(record: dict) -> None:
        if rank == 0:
            with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    # --- loop ----------------------------------------------------------------------------------
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stream = _batch_stream(rows, cfg, rank, world, start)
    bar = tqdm(total=total, initial=start, desc="sft", unit="step", disable=not progress or rank != 0, dynamic_ncols=True)
    record, seconds, tokens = {}, 0.0, 0
    train_model.train()
    try:
        for step in range(start, total):
            t0 = time.perf_counter()
            micro = [collate(part, pad) for _ in range(cfg.grad_accum) for part in split_by_tokens(next(stream), budget)]
            count = sum(learnt_tokens(b) for b in micro)
            count = max(1, int(_sum_across(count, world, rt.device)))  # every rank divides by the step's global count
            lr = loop.linear_lr(step, cfg.lr, warmup, total)
            loop.set_lr(optimizer, lr)
            loss_sum = 0.0
            for k, batch in enumerate(micro):
                with gradient_sync(train_model, k == len(micro) - 1), rt.autocast():
                    loss = train_model(batch) * world / count  # DDP and FSDP average gradients over ranks
                loss.backward()
                loss_sum += loss.item() / world
                tokens += batch["tokens"]
            grad_norm = loop.clip_and_step(train_model, optimizer, cfg.grad_clip)
            seconds += time.perf_counter() - t0
            done = step + 1
            record = {"step": done, "loss": _sum_across(loss_sum, world, rt.device), "lr": lr}
            if grad_norm is not None:
                record["grad_norm"] = grad_norm
            if done % cfg.log_every == 0 or done == total:
                record["tokens"] = tokens * world  # real (not padding) tokens trained on since the last line
                record["tokens_per_s"] = round(tokens * world / max(seconds, 1e-9), 1)
                seconds, tokens = 0.0, 0
                log(record)
            if done % cfg.eval_every == 0 or done == total:
                val_loss = validation_loss(loss_module, val_ex, cfg, pad, rt)
                if val_loss is not None:
                    record["val_loss"] = val_loss
                    log({"step": done, "val_loss": val_loss})
            if done % cfg.save_every == 0 and done < total:
                save_checkpoint(run, done, model, optimizer, rank)
                if rank == 0 and (run / "metrics.jsonl").is_file():
                    curves.plot_loss(run / "metrics.jsonl", run / "loss.png", f"{name}: instruction tuning")
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}")
    except BaseException:
        bar.close()
        if rank == 0 and latest_checkpoint(run) is None and not resume:
            shutil.rmtree(run, ignore_errors=True)  # nothing worth resuming: leave no half-made run
        raise
    bar.close()

    # --- save ----------------------------------------------------------------------------------
    summary = {"name": name, "base": cfg.base, "method": "qlora" if cfg.qlora else "lora" if cfg.lora else "full",
               "device": rt.describe(), "parallel": f"{'fsdp' if cfg.fsdp else 'ddp'} over {world} processes" if world > 1 else "none",
               "steps": total, "examples": report.summary(), "val_examples": len(val_ex),
               "formats": dict(data.formats), "dropped_rows": len(data.dropped), "rows": len(rows),
               "trainable_params": sum(p.numel() for p in params), "peak_memory_mb": _peak_memory_mb(rt),
               "batch_token_budget": budget, "last": record,
               "path": str(run), "rank": rank}
    weights = full_weights(model) if cfg.fsdp else None  # collective: a sharded model is gathered on every rank
    if rank == 0:
        meta = {"base": cfg.base, "base_path": str(base_path), "template": cfg.template, "method": summary["method"],
                "added_tokens": added, "max_len": cfg.max_len}
        save_model(run / "model", model, tokenizer, meta, META, weights)
        shutil.rmtree(run / "checkpoints", ignore_errors=True)
        curves.plot_loss(run / "metrics.jsonl", run / "loss.png", f"{name}: instruction tuning")
        atomic.write_json(run / "result.json", summary)
        catalog.add(name, str(run / "model"), backend="hf", chat=True, replace=True, task="generate",
                    description=f"{summary['method']} of {cfg.base} on {Path(data_path).name}")
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return summary


def _peak_memory_mb(rt) -> float:
    """Peak memory of this process so far, in MiB: allocated tensors on a GPU, resident set on a CPU
    (what decides whether a preset fits a machine)."""
    if rt.kind == "cuda":
        return round(torch.cuda.max_memory_allocated(rt.device) / 2**20, 1)
    import sys

    try:
        import resource
    except ImportError:  # Windows: the current resident set instead
        import psutil

        return round(psutil.Process().memory_info().rss / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _sum_across(value: float, world: int, device: str) -> float:
    if world == 1:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.item()


def _batch_stream(rows, cfg: SFTConfig, rank: int, world: int, start_step: int):
    """This rank's batches of rows forever, epoch after epoch; on resume the batches of finished steps are skipped."""
    skip, epoch = start_step * cfg.grad_accum, 0
    while True:
        for batch in epoch_batches(rows, cfg.batch_size, cfg.seed, epoch, rank, world):
            if skip:
                skip -= 1
                continue
            yield batch
        epoch += 1


@torch.no_grad()
def validation_loss(loss_module, examples, cfg: SFTConfig, pad: int, rt) -> float | None:
    """Mean loss per assistant token over every held-out example (no packing: each on its own). Every
    rank runs it on the same examples (a sharded model needs all ranks in each forward)."""
    if not examples:
        return None
    was_training = loss_module.training
    loss_module.eval()
    rows = make_rows(examples, cfg.max_len, packing=False)
    total, count = 0.0, 0
    for start in range(0, len(rows), cfg.batch_size):
        batch = collate(rows[start:start + cfg.batch_size], pad)
        with rt.autocast():
            total += float(loss_module(batch))
        count += learnt_tokens(batch)
    loss_module.train(was_training)
    return total / max(1, count)


def _write_run_files(run: Path, cfg: SFTConfig, data_path: str, data, report, val_report, rows: int, total: int,
                     val_conv: list, start: int) -> None:
    import yaml

    from loom.train.checkpoint import truncate_metrics

    run.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run / "config.yaml", yaml.safe_dump(cfg.model_dump(), sort_keys=False, allow_unicode=True))
    atomic.write_json(run / "data.json", {"data": str(Path(data_path).resolve()), "formats": dict(data.formats),
                                          "dropped": [{"line": n, "reason": why} for n, why in data.dropped],
                                          "train": report.summary(), "val": val_report.summary(), "rows": rows, "steps": total})
    write_conversations(run / "val.jsonl", val_conv)
    truncate_metrics(run / "metrics.jsonl", start)
