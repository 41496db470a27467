"""LoRA runs: an adapter folder is a standard peft folder (adapter_config.json + adapter_model.safetensors
+ the tokenizer with its chat template) beside `loom_sft.json`, which names the base it was tuned from.

Plain peft loads it (`PeftModel.from_pretrained(base, folder)`: adapter_config.json records the base
folder). Loom loads it the same way and merges the adapters into fp32 weights in memory, so a LoRA
run serves at the base model's speed; `loom models merge` writes that merged model as a plain HF
folder, with a report of how far the merged model's logits are from the adapter model's.
"""

from __future__ import annotations

import json
from pathlib import Path


META = "loom_sft.json"


def is_adapter(path: Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def read_meta(path: Path) -> dict:
    meta_path = Path(path) / META
    if not meta_path.is_file():
        return {}
    return json.loads(meta_path.read_text(encoding="utf-8"))


def load_adapter_model(path: Path, base: Path, merge: bool = True, dtype=None):
    """(model, tokenizer) of an adapter folder on the fp32 weights of its base folder: merged into a plain model
    (merge=True), or the peft model with live adapters (for comparing against the merge)."""
    import warnings

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # raised inside peft, not ours to fix
    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    base = AutoModelForCausalLM.from_pretrained(base, dtype=dtype or torch.float32)
    if base.get_input_embeddings().weight.shape[0] != len(tokenizer):  # tokens added by --template chatml
        base.resize_token_embeddings(len(tokenizer))
    model = PeftModel.from_pretrained(base, path)
    if merge:
        model = model.merge_and_unload()
    return model.eval(), tokenizer
