"""`loom pretrain`: setup -> loop -> save. Reads top to bottom.

Runs alone or under `torchrun --nproc_per_node N` (DDP over gloo on CPU, NCCL on GPUs; loom.runtime
decides device and dtype): every rank builds the same initial model (same seed), samples its own
windows (seed + rank), and rank 0 writes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from loom import atomic, catalog, home, runtime
from loom.config import PretrainConfig, load
from loom.tokenizer.shards import check_tokenizer_matches, open_split
from loom.errors import ExistsError, InputError, NotFoundError
from loom.model.build import build_model, count_params, save_hf
from loom.tokenizer.load import load_tokenizer
from loom.train import checkpoint, curves, loop
from loom.train.batches import WindowSampler


def _distributed(backend: str) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def pick_threads(requested: int, world_size: int) -> int:
    """Threads per process: asking for a core another process is using makes matmuls ~3x slower,
    so count cores that are mostly idle right now and share them between the ranks."""
    if requested:
        return requested
    import psutil

    busy = psutil.cpu_percent(interval=0.2, percpu=True)
    free = sum(1 for b in busy if b < 50) or 1
    return max(1, min(len(os.sched_getaffinity(0)), free) // world_size)


def config_source(name: str, resume: bool, config_path: str | None) -> str | None:
    """The YAML a run's settings come from: on --resume the run's own config.yaml (so flags given then,
    such as a longer --max-steps, apply on top of what it started with), else the preset (None =
    defaults). The caller loads it with its overrides and passes the typed config to pretrain()."""
    run = home.run_dir(name)
    if resume:
        if not (run / "run.json").is_file():
            raise NotFoundError(f"run {name!r} has nothing to resume at {run}", f"start it without --resume: `loom pretrain --data DATA --name {name}`")
        return str(run / "config.yaml")
    if run.exists():
        raise ExistsError(f"run {name!r} already exists at {run}", "pass --resume to continue it, or choose another --name")
    return config_path


def pretrain(data: str | None, name: str, cfg: PretrainConfig | None = None, resume: bool = False,
             progress: bool = True) -> dict:
    """Train run `name` with `cfg` (built by the caller: `load(PretrainConfig, config_source(...), overrides)`;
    None = the run's saved config on resume, else the defaults)."""
    # --- setup -------------------------------------------------------------------------------
    run = home.run_dir(name)
    source = config_source(name, resume, None)  # checks the run folder: nothing to resume, or already there
    cfg = cfg or load(PretrainConfig, source)
    catalog.check_run_name(name, run / "model")  # before training: never replace a model registered for something else
    info = json.loads((run / "run.json").read_text(encoding="utf-8")) if resume else {}
    t = cfg.train
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    rt = runtime.choose(t.device, t.dtype, pick_threads(t.threads, world_env)).apply()  # threads count on CPU only
    rank, world = _distributed(rt.ddp_backend)
    if world > 1:
        torch.distributed.barrier()  # every rank has checked the run folder before rank 0 creates it
    data = data or info.get("data")
    if resume and info and data != info["data"]:
        raise InputError(f"run {name!r} was trained on dataset {info['data']!r}, not {data!r}", "omit --data when resuming")
    if not data:
        raise InputError("no dataset given", "pass --data NAME (a dataset prepared and tokenized with `loom data`)")

    train_tokens, meta = open_split(data, "train")
    val_tokens, _ = open_split(data, "val")
    tok_dir = Path(meta["tokenizer"]["path"])
    if not (tok_dir / "tokenizer.json").is_file():
        raise NotFoundError(f"tokenizer of dataset {data!r} is gone ({tok_dir})", f"re-run `loom data tokenize {data} --tokenizer TOK`")
    tokenizer = load_tokenizer(str(tok_dir))
    check_tokenizer_matches(meta, tokenizer, "recorded (it changed since `loom data tokenize`)")
    sampler = WindowSampler(train_tokens, t.batch_size, t.seq_len, seed=t.seed + rank, split="train")
    val = WindowSampler(val_tokens, t.batch_size, min(t.seq_len, len(val_tokens) - 1), seed=0, split="val") if len(val_tokens) > 8 else None

    ckpt = checkpoint.latest(run) if resume else None
    if ckpt is not None:
        model = checkpoint.load_model(ckpt)
        if model.config.vocab_size != len(tokenizer):
            raise InputError(f"checkpoint vocabulary {model.config.vocab_size} != tokenizer {len(tokenizer)}", "resume with the dataset the run was started on")
    else:
        model = build_model(cfg.model, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id, seed=t.seed)
    model.to(rt.device)  # before the optimizer, so its state is made (or loaded) beside the weights
    optimizer = loop.make_optimizer(model, t)
    start_step = 0
    if ckpt is not None:
        state = checkpoint.load_state(ckpt)
        if len(state["samplers"]) != world:
            raise InputError(f"checkpoint {ckpt.name} was written by {len(state['samplers'])} process(es), this run has {world}",
                             f"resume with the same number of processes (torchrun --nproc_per_node {len(state['samplers'])})")
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["samplers"][rank])
        torch.set_rng_state(state["torch_rng"][rank])
        start_step = state["step"]

    if rank == 0:
        _write_run_files(run, cfg, data, meta, model, start_step)
    if world > 1:
        torch.distributed.barrier()
    raw_model = model
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rt.device] if rt.kind == "cuda" else None)
    if t.compile:
        model = torch.compile(model)

    def log(record: dict) -> None:
        if rank == 0:
            with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def save_checkpoint(step: int, last: dict) -> None:
        samplers = [sampler.state_dict()]
        rngs = [torch.get_rng_state()]
        if world > 1:  # every rank's data position and RNG go into the one checkpoint
            samplers, rngs = [None] * world, [None] * world
            torch.distributed.all_gather_object(samplers, sampler.state_dict())
            torch.distributed.all_gather_object(rngs, torch.get_rng_state())
        if rank == 0:
            state = {"optimizer": optimizer.state_dict(), "samplers": samplers, "torch_rng": rngs, "last": last}
            checkpoint.save(run, step, raw_model, tokenizer, state, t.keep_last)
            curves.plot_loss(run / "metrics.jsonl", run / "loss.png", f"{name}: {count_params(raw_model) / 1e6:.2f}M params")

    # --- loop --------------------------------------------------------------------------------
    the_loop = loop.Loop(model=model, raw_model=raw_model, optimizer=optimizer, train=sampler, val=val, cfg=t, runtime=rt,
                         start_step=start_step, rank=rank, world_size=world, log=log,
                         checkpoint=save_checkpoint, progress=progress)
    try:
        last = loop.run(the_loop)
    except BaseException:
        if rank == 0 and not resume and checkpoint.latest(run) is None:
            shutil.rmtree(run, ignore_errors=True)  # nothing worth resuming: leave no half-made run
        raise

    # --- save --------------------------------------------------------------------------------
    result = {"run": name, "path": str(run), "model": str(run / "model"), "steps": t.max_steps, "device": rt.describe(),
              "params": count_params(raw_model), "last": last or _last_metrics(run)}
    result_for_rank = result | {"rank": rank}
    if rank == 0:
        with atomic.folder_writer(run / "model", replace=True) as tmp:
            save_hf(raw_model, tokenizer, tmp)
        catalog.add(name, str(run / "model"), backend="hf", description=f"pretrained on {data}", replace=True)
        atomic.write_json(run / "result.json", result)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result_for_rank


def _last_metrics(run: Path) -> dict:
    path = run / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return json.loads(lines[-1]) if lines else {}


def _write_run_files(run: Path, cfg: PretrainConfig, data: str, meta: dict, model, start_step: int) -> None:
    import yaml

    run.mkdir(parents=True, exist_ok=True)
    # Rewritten on resume too, so overrides given then (e.g. a longer --max-steps) are remembered.
    atomic.write_text(run / "config.yaml", yaml.safe_dump(cfg.model_dump(), sort_keys=False, allow_unicode=True))
    atomic.write_json(run / "run.json", {"data": data, "tokenizer": meta["tokenizer"], "params": count_params(model)})
    checkpoint.truncate_metrics(run / "metrics.jsonl", start_step)
