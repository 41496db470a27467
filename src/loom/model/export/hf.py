"""`--format hf`: a clean Hugging Face folder that other engines (vLLM, TGI, plain transformers) serve
as a chat model with no extra flags.

Two details decide that. The chat template must sit in tokenizer_config.json (transformers 5 writes
it to chat_template.jinja, which older readers do not look at), so it is written in both places. And
generation must stop at the end-of-turn token as well as at EOS: for a Loom run EOS is <|endoftext|>
while a chat turn ends with <|im_end|>, so generation_config.json lists both as eos_token_id, the
list vLLM and transformers stop at.
"""

from __future__ import annotations

import json
from pathlib import Path

from loom import atomic
from loom.tokenizer.chat import end_of_turn_id


def stop_ids(tokenizer) -> list[int]:
    """End-of-turn first, then EOS (no duplicates, no None)."""
    return list(dict.fromkeys(i for i in (end_of_turn_id(tokenizer), tokenizer.eos_token_id) if i is not None))


def write_hf(model, tokenizer, out: Path, replace: bool = False) -> dict:
    """Save model + tokenizer to `out` (whole or not at all); returns what an engine will read."""
    from transformers import GenerationConfig

    stops = stop_ids(tokenizer)
    with atomic.folder_writer(out, replace=replace) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config_path = tmp / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if tokenizer.chat_template:
            config["chat_template"] = tokenizer.chat_template
        atomic.write_json(config_path, config)
        generation = GenerationConfig.from_model_config(model.config)
        generation.eos_token_id = stops if len(stops) > 1 else (stops[0] if stops else None)
        generation.bos_token_id = tokenizer.bos_token_id
        generation.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops or [None])[-1]
        generation.save_pretrained(tmp)
    return {"path": str(out), "files": sorted(p.name for p in out.iterdir()), "eos_token_id": stops,
            "chat_template": bool(tokenizer.chat_template)}
