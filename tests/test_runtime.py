"""The device-aware runtime (loom.runtime): choices on this CPU machine, choices with a GPU faked in,
clear errors for a device that is not there, and `--device` reaching the commands."""

from __future__ import annotations

import pytest
import torch

from conftest import run_loom
from loom import runtime
from loom.errors import InputError


def test_auto_on_this_machine_is_the_cpu_in_fp32():
    rt = runtime.choose("auto", threads=2)
    assert (rt.device, rt.dtype, rt.ddp_backend, rt.threads) == ("cpu", "fp32", "gloo", 2)
    with rt.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    bf16 = runtime.choose("cpu", "bf16")
    with bf16.autocast():  # asked for explicitly: CPU autocast to bf16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


@pytest.fixture
def fake_gpus(monkeypatch):
    """Two CUDA devices as far as loom.runtime can tell (no kernel ever runs)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    support = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: support["bf16"])
    return support


def test_a_gpu_is_chosen_with_bf16_and_nccl(fake_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    rt = runtime.choose("auto", threads=8)
    assert (rt.device, rt.kind, rt.dtype, rt.ddp_backend, rt.threads) == ("cuda:1", "cuda", "bf16", "nccl", 0)
    assert runtime.choose("auto", local_rank=3).device == "cuda:1"  # ranks wrap around the visible GPUs
    fake_gpus["bf16"] = False  # pre-Ampere: fp32, not fp16 (which would need loss scaling)
    assert runtime.choose("cuda").dtype == "fp32"
    cpu = runtime.choose("cpu")  # a GPU machine can still be told to use its CPU
    assert (cpu.device, cpu.dtype, cpu.ddp_backend) == ("cpu", "fp32", "gloo")


def test_a_missing_or_unknown_device_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError) as e:
        runtime.choose("cuda")
    assert "no CUDA GPU" in e.value.message and "--device cpu" in e.value.hint
    with pytest.raises(InputError):
        runtime.choose("tpu")
    with pytest.raises(InputError):
        runtime.choose("cpu", "fp16")


def test_device_flag_on_generate_and_pretrain(pipeline):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_loom("generate", "nano", "--prompt", "the", "--device", "cuda", env_home=pipeline["home"], check=False)
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr
    ok = run_loom("generate", "nano", "--prompt", "the", "--max-new-tokens", "5", "--device", "cpu", env_home=pipeline["home"])
    assert "cpu" in ok.stderr
    for command in (["serve"], ["chat"], ["pretrain"], ["finetune", "classify"]):
        assert "--device" in run_loom(*command, "--help", env_home=pipeline["home"]).stdout
