"""`loom models merge NAME`: a LoRA run -> a plain HF folder (adapters folded into fp32 base weights),
with a report of what the merge changed.

Merging computes W + (alpha / r) * B @ A once, in fp32, onto the *unquantised* base, even for a
QLoRA run (whose adapters were trained against a 4-bit copy of it). The report compares the adapter
model (base + live adapters, as trained: 4-bit under QLoRA when a CUDA GPU is here, else fp32) with
the merged model on held-out conversations: the largest absolute logit difference and the share of
positions whose top-1 token agrees. fp32 LoRA merges differ by rounding only (~1e-5); a QLoRA merge
differs by the quantisation error the adapters were trained around, which the report makes visible.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from loom import atomic
from loom.errors import InputError
from loom.model import adapters
from loom.model.compare import compare, logits
from loom.model.load import adapter_base

REPORT_EXAMPLES = 16  # held-out conversations compared (each a forward pass on two models)


def _examples(tokenizer, run_dir: Path, max_len: int) -> list[list[int]]:
    """Token ids of up to REPORT_EXAMPLES held-out conversations (the run's val.jsonl), or of a fixed
    pair of prompts when the run held none out."""
    from loom.data.chat import read_conversations
    from loom.errors import LoomError
    from loom.tokenizer.chat import encode_all

    conversations = []
    if (run_dir / "val.jsonl").is_file():
        try:
            conversations = read_conversations(run_dir / "val.jsonl").conversations[:REPORT_EXAMPLES]
        except LoomError:
            conversations = []
    if not conversations:
        conversations = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in
                         (("Say hello in one sentence.", "Hello! How can I help?"), ("用一句话介绍你自己。", "我是一个乐于助人的助手。"))]
    encoded, _ = encode_all(tokenizer, conversations, max_len)
    return [e.input_ids for e in encoded]


def merge(adapter_dir: Path, out_dir: Path) -> dict:
    """Write the merged model to out_dir (whole or not at all); returns the merge report."""
    adapter_dir = Path(adapter_dir)
    if not adapters.is_adapter(adapter_dir):
        raise InputError(f"{adapter_dir} holds no LoRA adapters (no adapter_config.json)",
                         "merge applies to runs trained with `loom finetune sft --lora` (the default)")
    meta = adapters.read_meta(adapter_dir)
    base = adapter_base(adapter_dir)
    reference, tokenizer = adapters.load_adapter_model(adapter_dir, base, merge=False)
    compared_with = "fp32 base + adapters"
    if meta.get("method") == "qlora" and torch.cuda.is_available():
        try:
            reference, compared_with = _quantised_reference(adapter_dir, base), "4-bit base + adapters (as trained)"
        except ImportError:
            pass
    examples = _examples(tokenizer, adapter_dir.parent, int(meta.get("max_len", 1024)))
    before = logits(reference, examples)
    merged, _ = adapters.load_adapter_model(adapter_dir, base, merge=True)
    report = {"compared_with": compared_with, "examples": len(examples), **compare(before, logits(merged, examples)),
              "base": meta.get("base"), "method": meta.get("method", "lora")}
    with atomic.folder_writer(out_dir, replace=True) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic.write_text(tmp / "merge_report.json", json.dumps(report, indent=2))
    return report


def _quantised_reference(adapter_dir: Path, base: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(base, quantization_config=quant, device_map={"": 0})
    return PeftModel.from_pretrained(model, adapter_dir).eval()
