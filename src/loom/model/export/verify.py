"""`loom export --verify`: proof that an exported model is the model that was trained.

1. Numbers: next-token logits of the source model and of the export read back (a GGUF through
   transformers' `gguf_file=` dequantiser, an HF folder as saved) on a fixed text set: the largest
   absolute difference (f16 rounding is ~1e-3 of the logit scale) and the top-1 agreement (q8_0
   should keep >= 0.99).
2. The chat template: for every probe conversation (system, multi-turn, Chinese, empty system,
   prefill, ...) the token ids from the training tokenizer's own template, from the template read
   back out of the export, and (Ollama) from the ChatML rendering the Go template mirrors, must be
   identical. The slow suite renders the Go template with a real Go engine as well.
"""

from __future__ import annotations

import json
from pathlib import Path

from loom.model.compare import compare, logits
from loom.model.export import ollama

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Loom exported 3 models on 29 November 2026: f16, q8_0 and an Ollama folder.",
    "我们的客服团队每天早上九点开始工作，周末也有人值班。",
    "def add(a, b):\n    return a + b\n",
]
_MAX_LEN = 96  # tokens per text: enough positions for a stable top-1 figure, cheap on a CPU


def examples(tokenizer, context: int) -> list[list[int]]:
    texts = TEXTS + ([ollama.render_hf(tokenizer, m, mode) for _, m, mode in ollama.PROBES[:2]] if tokenizer.chat_template else [])
    limit = max(8, min(_MAX_LEN, context))
    return [ids[:limit] for ids in (tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts) if ids]


def template_identity(tokenizer, exported_template: str | None, fmt: ollama.ChatFormat | None) -> dict:
    """Per probe conversation: are the token ids from every rendering identical?"""
    if not tokenizer.chat_template:
        return {"conversations": 0, "identical": 0, "mismatches": [], "note": "no chat template"}
    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    mismatches = []
    for label, messages, mode in ollama.PROBES:
        trained = encode(ollama.render_hf(tokenizer, messages, mode))
        differs = []
        if not exported_template:
            differs.append("the export carries no template")
        elif encode(ollama.render_hf(tokenizer, messages, mode, exported_template)) != trained:
            differs.append("exported Jinja template")
        if fmt is not None and encode(ollama.render_chatml(messages, fmt.default_system)) != trained:
            differs.append("Ollama template")
        if differs:
            mismatches.append(f"{label}: {', '.join(differs)}")
    return {"conversations": len(ollama.PROBES), "identical": len(ollama.PROBES) - len(mismatches), "mismatches": mismatches}


def gguf_template(path: Path) -> str | None:
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get("tokenizer.chat_template")
    return field.contents() if field is not None else None


def _read_back(path: Path):
    import logging

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if path.suffix == ".gguf":
        return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def verify(model, tokenizer, exported: Path, fmt: ollama.ChatFormat | None = None) -> dict:
    """The verification report for an export at `exported` (a .gguf file or an HF folder)."""
    ids = examples(tokenizer, int(getattr(model.config, "max_position_embeddings", _MAX_LEN)))
    numbers = compare(logits(model, ids), logits(_read_back(exported), ids))
    if exported.suffix == ".gguf":
        template = gguf_template(exported)
    else:
        template = json.loads((exported / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template")
    return {"texts": len(ids), **numbers, "template": template_identity(tokenizer, template, fmt)}
