"""The one place that decides where and how tensors run: device (cpu, cuda, mps), autocast dtype,
threads, and the DDP backend. Training, classifier fine-tuning and the inference engine all ask here.

    rt = runtime.choose("auto")          # cuda:LOCAL_RANK if there is a GPU, else mps, else cpu
    model.to(rt.device)
    with rt.autocast():                  # bf16 on GPUs that have it; fp32 (no autocast) on this CPU
        loss = ...

Why these defaults: on CUDA, bf16 autocast halves activation memory and runs on tensor cores at
several times the fp32 rate with fp32's exponent range (no loss scaling needed); GPUs without bf16
(before Ampere) stay in fp32 rather than fp16, which would need a GradScaler. On CPUs without bf16
units (this Ice Lake machine) bf16 matmuls are ~4x slower than fp32, so `auto` is fp32 there and bf16
on CPU happens only when asked for. DDP uses NCCL between GPUs and gloo on CPU.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Literal

Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "fp32", "bf16")


# OpenMP threads spin this many iterations after a parallel region before they sleep (GNU libgomp's
# default is 300,000: ~1 ms). In a serving process torch only samples between decode steps, and its
# spinning pool then holds the cores an engine child needs: smollm2 decoded at 46 tok/s behind a
# spinning parent and 56 with 10,000 (the transformers engine: 32.8 vs 32.3 tok/s, -1%).
SERVING_SPINCOUNT = "10000"


def for_serving() -> None:
    """Call before torch is imported in a process that serves models (serve, chat): idle
    OpenMP threads go to sleep soon instead of spinning against the llama.cpp engine's children.
    A GOMP_SPINCOUNT the user set wins."""
    os.environ.setdefault("GOMP_SPINCOUNT", SERVING_SPINCOUNT)


@dataclass(frozen=True)
class Runtime:
    device: str  # a torch device string: "cpu", "cuda:0", "mps"
    dtype: str  # autocast dtype: "fp32" (none) or "bf16"
    threads: int  # torch CPU threads (0 = leave torch's default)
    ddp_backend: str  # "nccl" | "gloo"

    @property
    def kind(self) -> str:
        return self.device.split(":")[0]

    def autocast(self):
        """Autocast for this device and dtype; a no-op for fp32."""
        if self.dtype != "bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.kind, dtype=torch.bfloat16)

    def apply(self) -> "Runtime":
        """Set process-wide state: CPU threads, and the current CUDA device."""
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        if self.kind == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls on tensor cores: ~8x, 10-bit mantissa inputs
            torch.backends.cudnn.allow_tf32 = True
        return self

    def describe(self) -> str:
        return f"{self.device}, {self.dtype}" + (f", {self.threads} threads" if self.threads and self.kind == "cpu" else "")


def choose(device: str = "auto", dtype: str = "auto", threads: int = 0, local_rank: int | None = None) -> Runtime:
    """Resolve "auto" choices against the hardware. Raises InputError for a device that is not there."""
    import torch

    from loom.errors import InputError

    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}", f"use one of: {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}", f"use one of: {', '.join(DTYPES)}")
    cuda, mps = torch.cuda.is_available(), _mps_available()
    if device == "cuda" and not cuda:
        raise InputError("--device cuda, but PyTorch sees no CUDA GPU (this install is the CPU build, or no driver)",
                         "use --device cpu (or auto), or install a CUDA build of torch==2.13.0 on a GPU machine")
    if device == "mps" and not mps:
        raise InputError("--device mps, but PyTorch sees no Apple GPU", "use --device cpu (or auto)")
    kind = device if device != "auto" else "cuda" if cuda else "mps" if mps else "cpu"
    rank = int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank
    name = f"cuda:{rank % max(1, torch.cuda.device_count())}" if kind == "cuda" else kind
    if dtype == "auto":
        dtype = "bf16" if kind == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return Runtime(device=name, dtype=dtype, threads=threads if kind == "cpu" else 0,
                   ddp_backend="nccl" if kind == "cuda" else "gloo")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
