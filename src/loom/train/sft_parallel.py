"""Data parallelism for instruction tuning, and the state of a model that may be sharded.

Under `torchrun --nproc_per_node N`, each rank trains on its own batches and gradients are averaged:
- DDP (default): every rank holds the whole model, its gradients and optimizer state;
- FSDP (`--fsdp`, PyTorch's fully_shard): each rank holds 1/N of every parameter, gradient and
  optimizer state. A layer's weights are gathered just before it runs and freed after, so a model
  needing ~16 bytes per parameter for fp32 weights + AdamW state needs ~16/N per rank, plus one
  layer at a time. This is for bases that do not fit one GPU. It costs an extra all-gather per layer
  in the backward pass.

Both wrap `LossModule`, whose forward is the whole loss. That way the fast loss path (the output head
only at learnt positions) runs under either wrapper. The wrappers' hooks run on that forward: DDP's
gradient all-reduce, and FSDP's gathering of the root's weights (embeddings, final norm, head).
Both average gradients over ranks, so the loss is scaled the same way (x world / global learnt tokens).

Checkpoints and the saved model use full (unsharded) state dicts, gathered on rank 0 in CPU memory.
The same code therefore serves one process, DDP and FSDP, and a run resumes under any of them.
"""

from __future__ import annotations

import contextlib

import torch

from loom.errors import InputError
from loom.train.sft_batches import decoder_and_head, sft_loss_sum


class LossModule(torch.nn.Module):
    """The language model with the SFT loss as its forward: batch -> summed loss over learnt tokens."""

    def __init__(self, lm: torch.nn.Module, device: str):
        super().__init__()
        self.lm = lm
        self.device = device

    def forward(self, batch: dict) -> torch.Tensor:
        return sft_loss_sum(self.lm, batch, self.device)


def check_fsdp(cfg, world: int) -> None:
    """Fail before loading anything when --fsdp cannot work."""
    if not cfg.fsdp:
        return
    if world < 2:
        raise InputError("--fsdp shards the model across processes, but this is a single process",
                         "run under torchrun: `torchrun --nproc_per_node N -m loom finetune sft ... --fsdp` (N >= 2), "
                         "or drop --fsdp")
    if cfg.qlora:
        raise InputError("--fsdp and --qlora cannot be combined (4-bit bitsandbytes weights are not sharded here)",
                         "use --qlora on one GPU, or --fsdp with LoRA or full tuning in bf16")
    if cfg.max_batch_tokens:  # every rank must run the same number of forward passes: each one gathers weights
        raise InputError("--max-batch-tokens splits each rank's batches on its own, which FSDP's shared passes cannot follow",
                         "size the passes with --batch-size and --grad-accum instead")


def wrap(model: torch.nn.Module, rt, world: int, fsdp: bool) -> tuple[LossModule, torch.nn.Module]:
    """(loss module, what the loop calls). One process: the same module. DDP: a DDP wrapper around it.
    FSDP: the loss module sharded in place (every decoder layer is its own unit, the rest is the root)."""
    loss_module = LossModule(model, rt.device)
    if world == 1:
        return loss_module, loss_module
    if not fsdp:
        ddp = torch.nn.parallel.DistributedDataParallel(loss_module, device_ids=[rt.device] if rt.kind == "cuda" else None)
        return loss_module, ddp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(rt.kind, (world,))
    for layer in _decoder_layers(model):
        fully_shard(layer, mesh=mesh)  # shards land on the mesh's device: a CPU-loaded model moves 1/N per GPU
    fully_shard(loss_module, mesh=mesh)
    return loss_module, loss_module


def _decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    parts = decoder_and_head(model)
    layers = getattr(parts[0], "layers", None) if parts else None
    if layers is None:
        raise InputError("--fsdp needs a decoder laid out as model.layers (Llama, Qwen, Mistral and similar)",
                         "drop --fsdp for this base")
    return list(layers)


def gradient_sync(train_model: torch.nn.Module, sync: bool):
    """Context for one micro-batch: with gradient accumulation, ranks exchange gradients only on the last."""
    if hasattr(train_model, "no_sync"):  # DDP
        return contextlib.nullcontext() if sync else train_model.no_sync()
    if hasattr(train_model, "set_requires_gradient_sync"):  # FSDP: keeps unsharded gradients until the last
        train_model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # full tensors on the CPU; when distributed, only rank 0 receives them (the others get {})
    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)


def full_weights(model: torch.nn.Module, trainable_only: bool = False) -> dict[str, torch.Tensor]:
    """The model's state dict with every sharded tensor gathered whole. Collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    # trainable_only: frozen weights (a LoRA run's whole base) are neither gathered nor copied
    state = get_model_state_dict(model, options=_options(ignore_frozen_params=trainable_only))
    if trainable_only:  # buffers too are left out: a checkpoint holds what training changes
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        state = {n: t for n, t in state.items() if n in names}
    return state


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer state keyed by parameter name, gathered whole. Collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options())


def load_full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, weights: dict, optimizer_state: dict) -> None:
    """Put full tensors back into a (possibly sharded) model and its optimizer; each rank keeps its shard."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, weights, options=options)
    groups = optimizer_state.get("param_groups") or [{}]
    if groups[0].get("params") and isinstance(groups[0]["params"][0], int):  # a checkpoint from before FSDP: keyed by position
        optimizer.load_state_dict(optimizer_state)
        return
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
