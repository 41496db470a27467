"""The model side of instruction tuning: the base with LoRA adapters (or all weights trainable), its
resumable checkpoints, and the saved result.

A checkpoint holds only what training changes: the trainable tensors (a few MB for LoRA) and the
optimizer state, under checkpoints/step-NNNNNNNN/, each written whole or not at all."""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import torch

from loom import atomic
from loom.config import SFTConfig
from loom.errors import InputError
from loom.train.sft_parallel import full_optimizer_state, full_weights, load_full_state

_PREFIX = "step-"
KEEP_LAST = 2


def load_for_training(base_path: Path, tokenizer, added_tokens: int, cfg: SFTConfig, rt):
    """The base on rt.device in fp32 (4-bit NF4 under --qlora), with LoRA adapters unless --no-lora."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # raised inside peft, not ours to fix
    kwargs = {"dtype": torch.float32}
    if cfg.qlora:
        kwargs = _qlora_kwargs()
    model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    if added_tokens:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if not cfg.qlora and not cfg.fsdp:  # FSDP moves each rank's shard to the device itself
        model.to(rt.device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not cfg.lora and not cfg.qlora:
        return _compiled(model, cfg)
    from peft import LoraConfig, TaskType, get_peft_model

    if cfg.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    targets = cfg.target_modules
    lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets[0] if targets == ["all-linear"] else targets,
                      # new chat tokens need trained embedding rows: the input and output embeddings train whole
                      modules_to_save=["embed_tokens", "lm_head"] if added_tokens else None)
    try:
        model = get_peft_model(model, lora)
    except ValueError as e:  # peft names the missing module
        raise InputError(f"cannot place LoRA adapters: {e}", "check --target-modules against the base's layer names "
                         "(e.g. q_proj,k_proj,v_proj,o_proj), or use all-linear") from e
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
    return _compiled(model, cfg)


# Activation memory one training forward pass keeps for the backward pass, per token, in fp32 values:
# per layer ~24 per hidden unit (norm outputs, attention inputs and outputs, residuals, LoRA dropout
# copies) and ~12 per MLP unit (gate, up, activation, product, their copies). Calibrated on this CPU:
# Qwen2.5-0.5B (24 layers, 896 / 4864) estimates 7.7 MB/token, and 2 x 512 tokens peaked at ~11 GB
# resident (2.5 GB of weights); SmolLM2-135M (30 layers, 576 / 1536) estimates 3.9 MB/token, and
# 8 x 256 tokens peaked at 8.5 GB.
HIDDEN_VALUES, MLP_VALUES = 24, 12
FREE_SHARE = 0.75  # share of the free memory activations may take (the allocator fragments, the OS needs some)


def activation_bytes_per_token(config, checkpointing: bool) -> int | None:
    """Estimated bytes of saved activations per token; None when the config does not say its shape."""
    layers, hidden = getattr(config, "num_hidden_layers", None), getattr(config, "hidden_size", None)
    if not layers or not hidden:
        return None
    per_layer = 4 * (HIDDEN_VALUES * hidden + MLP_VALUES * getattr(config, "intermediate_size", 4 * hidden))
    if checkpointing:  # only each layer's input is kept; one layer at a time is recomputed
        return 4 * hidden * layers + per_layer
    return per_layer * layers


def batch_token_budget(model, cfg: SFTConfig, rt, local_processes: int) -> int:
    """Most tokens per forward pass (0 = no limit). --max-batch-tokens when given; on a CPU, what the
    memory free now (the model loaded, optimizer state still to come) holds, shared by the processes
    of this machine. On a CPU, running out of memory is a SIGKILL with no message, so it is avoided
    up front; on a GPU it is an exception that names the fix, and a split would cost speed."""
    if cfg.max_batch_tokens:
        return cfg.max_batch_tokens
    per_token = activation_bytes_per_token(getattr(model, "config", None), cfg.gradient_checkpointing)
    if rt.kind != "cpu" or cfg.fsdp or per_token is None:
        return 0
    import psutil

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    free = psutil.virtual_memory().available / max(1, local_processes) - 12 * trainable  # fp32 grads + 2 AdamW moments
    fits = int(free * FREE_SHARE / per_token)
    if fits < cfg.max_len:
        print(f"warning: one {cfg.max_len}-token row needs ~{cfg.max_len * per_token / 2**30:.1f} GiB for activations and "
              f"~{max(free, 0) / 2**30:.1f} GiB is free; lower --max-len, add --gradient-checkpointing, or free memory",
              file=sys.stderr)
    return max(cfg.max_len, fits)


def _compiled(model, cfg: SFTConfig):
    """Compile the decoder in place (the loss calls it directly; the module tree, and so saving, is unchanged)."""
    if cfg.compile:
        from loom.train.sft_batches import decoder_and_head

        parts = decoder_and_head(model)
        (parts[0] if parts else model).compile()
    return model


def _qlora_kwargs() -> dict:
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as e:
        raise InputError("--qlora needs bitsandbytes", "pip install 'loom[gpu]' (bitsandbytes, on a CUDA machine)") from e
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    return {"quantization_config": quant, "dtype": torch.bfloat16, "device_map": {"": torch.cuda.current_device()}}


def checkpoint_dirs(run: Path) -> list[Path]:
    root = run / "checkpoints"
    found = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / "state.pt").is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest_checkpoint(run: Path) -> Path | None:
    dirs = checkpoint_dirs(run)
    return dirs[-1] if dirs else None


def save_checkpoint(run: Path, step: int, model, optimizer, rank: int = 0) -> None:
    """Every rank calls this (a sharded model's tensors are gathered); rank 0 writes."""
    weights, optimizer_state = full_weights(model, trainable_only=True), full_optimizer_state(model, optimizer)
    if rank != 0:
        return
    with atomic.folder_writer(run / "checkpoints" / f"{_PREFIX}{step:08d}", replace=True) as tmp:
        torch.save({"step": step, "weights": weights, "optimizer": optimizer_state, "torch_rng": torch.get_rng_state()},
                   tmp / "state.pt")
    for old in checkpoint_dirs(run)[:-KEEP_LAST]:
        shutil.rmtree(old, ignore_errors=True)


def restore_checkpoint(ckpt: Path, model, optimizer) -> int:
    """Load weights and optimizer state (every rank, each keeping its shard); returns the step to continue from."""
    state = torch.load(ckpt / "state.pt", weights_only=True, map_location="cpu")
    missing = set(state["weights"]) - set(model.state_dict())
    if missing:
        raise InputError(f"checkpoint {ckpt} does not fit this model (e.g. {sorted(missing)[0]})",
                         "resume with the settings the run started with (omit --base, --lora-r, --template)")
    load_full_state(model, optimizer, state["weights"], state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


def save_model(out: Path, model, tokenizer, meta: dict, meta_name: str, weights: dict | None = None) -> None:
    """LoRA: the peft adapter folder (its adapter_config.json names the base folder); full: a plain HF
    folder. The tokenizer goes with it, chat template included. Written whole, then renamed into place.
    `weights`: the full state dict of a sharded model (gathered by the caller on every rank)."""
    from transformers import GenerationConfig

    with atomic.folder_writer(out, replace=True) as tmp:
        if hasattr(model, "peft_config"):
            model.save_pretrained(tmp, state_dict=weights)
        else:
            model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            (model if weights is not None else model.to("cpu")).save_pretrained(tmp, state_dict=weights)
        tokenizer.save_pretrained(tmp)
        atomic.write_json(tmp / meta_name, meta)
