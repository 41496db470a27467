"""ModelConfig (+ tokenizer facts) -> a transformers LlamaForCausalLM, and saving it as a standard
Hugging Face folder that `AutoModelForCausalLM.from_pretrained` loads without Loom."""

from __future__ import annotations

from pathlib import Path

from loom.config import ModelConfig
from loom.errors import ConfigError
from loom.model.presets import preset


def resolve_shape(cfg: ModelConfig) -> dict[str, int]:
    """Preset sizes overridden by explicit fields; defaults for d_ff and n_kv_head."""
    shape = preset(cfg.preset) if cfg.preset else {}
    for key in ("n_layer", "n_head", "n_kv_head", "d_model", "d_ff"):
        value = getattr(cfg, key)
        if value is not None:
            shape[key] = value
    missing = [k for k in ("n_layer", "n_head", "d_model") if k not in shape]
    if missing:
        raise ConfigError(f"model shape incomplete: missing {', '.join(missing)}", "set model.preset or those fields")
    # SwiGLU has 3 matrices instead of 2: 8/3*d keeps the MLP's parameters equal to a 4*d GELU MLP.
    shape.setdefault("d_ff", int(8 * shape["d_model"] / 3))
    shape.setdefault("n_kv_head", shape["n_head"])
    if shape["d_model"] % shape["n_head"]:
        raise ConfigError(f"d_model ({shape['d_model']}) must be divisible by n_head ({shape['n_head']})", "change one of them")
    if shape["n_head"] % shape["n_kv_head"]:
        raise ConfigError(f"n_head ({shape['n_head']}) must be a multiple of n_kv_head ({shape['n_kv_head']})", "change one of them")
    return shape


def llama_config(cfg: ModelConfig, vocab_size: int, eos_id: int, pad_id: int | None):
    from transformers import LlamaConfig

    shape = resolve_shape(cfg)
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape["d_model"],
        intermediate_size=shape["d_ff"],
        num_hidden_layers=shape["n_layer"],
        num_attention_heads=shape["n_head"],
        num_key_value_heads=shape["n_kv_head"],
        max_position_embeddings=cfg.max_seq_len,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
        attention_dropout=cfg.dropout,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        attn_implementation="sdpa",
    )


def build_model(cfg: ModelConfig, vocab_size: int, eos_id: int, pad_id: int | None, seed: int):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)  # same seed -> same initial weights, on every rank
    return LlamaForCausalLM(llama_config(cfg, vocab_size, eos_id, pad_id))


def save_hf(model, tokenizer, out_dir: Path, max_new_tokens: int = 256) -> None:
    """Model weights (safetensors) + config + generation config + tokenizer into `out_dir`."""
    from transformers import GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per shard is noise next to Loom's own

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=0.8,
        top_k=50,
        max_new_tokens=max_new_tokens,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def count_params(model) -> int:
    # Tied weights are shared tensors: parameters() yields them once.
    return sum(p.numel() for p in model.parameters())
