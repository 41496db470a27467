"""Write a transformers causal LM and its tokenizer as one GGUF file (llama.cpp's format).

What llama.cpp needs, and where each part comes from:
- hyperparameters under the architecture's prefix ("llama." or "qwen2."): from the HF config;
- tensors under llama.cpp's names (token_embd, blk.N.attn_q, ...). Llama's q and k projections are
  stored with their rows permuted: HF orders each head's rotary pairs as two halves (the
  rotate_half convention), llama.cpp's "llama" kernels expect them interleaved. Qwen2 uses the
  halves convention in llama.cpp too ("neox" rope), so its weights go in unchanged;
- the tokenizer: byte-level BPE as tokens + merges + a pre-tokenizer name llama.cpp knows (the
  regex that splits text before merging). A pre-tokenizer it does not know would silently
  tokenize differently, so anything unrecognised is refused, as are tokenizers that are not
  byte-level BPE;
- special ids: BOS, EOS and the end-of-turn token (EOT), which llama.cpp and Ollama stop at;
- the chat template, verbatim (Jinja), under tokenizer.chat_template.

Tensors: 1-D tensors (norms, biases) stay f32. 2-D weights become f16, or q8_0 (blocks of 32
values sharing one f16 scale: 8.5 bits a weight). A row whose length is not a multiple of 32 cannot
be cut into q8_0 blocks and falls back to f16, as llama.cpp's own converter does. embeddings_f16
keeps token_embd and output at f16 in a q8_0 file (llama-quantize's --token-embedding-type idea).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loom import atomic
from loom.errors import InputError
from loom.tokenizer.chat import end_of_turn_id

QUANTS = ("f16", "q8_0")
ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
_Q8_BLOCK = 32  # values per q8_0 block

# HF module name (per layer) -> llama.cpp tensor name
_LAYER_TENSORS = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}
_TOP_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                "lm_head.weight": "output.weight"}


@dataclass
class GGUFSummary:
    path: str
    architecture: str
    quant: str
    bytes: int
    tensors: int
    tensor_types: dict[str, int] = field(default_factory=dict)  # e.g. {"Q8_0": 12, "F16": 2, "F32": 9}
    vocab: int = 0
    pre_tokenizer: str = ""
    bos_id: int | None = None
    eos_id: int | None = None
    eot_id: int | None = None
    chat_template: bool = False


def architecture_of(model) -> str:
    """llama.cpp's architecture name for a model, or a clear refusal."""
    arch = (getattr(model.config, "architectures", None) or [type(model).__name__])[0]
    if type(model).__name__ in ARCHITECTURES:
        arch = type(model).__name__
    if arch not in ARCHITECTURES:
        raise InputError(f"GGUF export supports Llama-architecture models (Llama, Qwen2); this one is {arch}",
                         "export it with --format hf instead, or convert it with llama.cpp's own converter")
    cfg = model.config
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type != "default":
        raise InputError(f"this model uses {rope_type} RoPE scaling, which the GGUF writer does not carry",
                         "export it with --format hf")
    if getattr(cfg, "use_sliding_window", False):
        raise InputError("this model uses sliding-window attention, which llama.cpp's qwen2 architecture does not",
                         "export it with --format hf")
    if getattr(cfg, "mlp_bias", False) or (arch == "LlamaForCausalLM" and getattr(cfg, "attention_bias", False)):
        raise InputError("this Llama model has bias terms, which llama.cpp's llama architecture does not load",
                         "export it with --format hf")
    return ARCHITECTURES[arch]


# -- tokenizer -----------------------------------------------------------------------------------

def _split_pattern(pre: dict) -> str | None:
    pattern = pre.get("pattern") or {}
    return pattern.get("Regex") or pattern.get("String")


def pre_tokenizer_name(tokenizer_json: dict) -> str:
    """The llama.cpp name of the tokenizer's pre-tokenizer, recognised from its structure."""
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN2_SPLIT

    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True) and not steps[0].get("add_prefix_space"):
        return "gpt-2"  # the GPT-2 split regex, built into ByteLevel (Loom's own BPE tokenizers)
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"  # every digit alone, then the GPT-2 regex
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True) and _split_pattern(steps[0]) == QWEN2_SPLIT:
        return "qwen2"
    raise InputError(f"the tokenizer's pre-tokenizer ({' + '.join(k or '?' for k in kinds) or 'none'}) has no GGUF equivalent "
                     "Loom knows, so llama.cpp would split text differently",
                     "export with --format hf, or use a byte-level BPE tokenizer (GPT-2, SmolLM2 or Qwen2 style)")


def _adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


def tokenizer_fields(tokenizer, n_vocab: int, pre_override: str | None = None) -> dict:
    """What the GGUF's tokenizer.* keys hold: tokens (id order), types, merges, ids and flags."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not any(s.get("type") == "ByteLevel" for s in _steps(data.get("pre_tokenizer"))):
        kind = model.get("type") or "unknown"
        raise InputError(f"the tokenizer is {kind}, not byte-level BPE; GGUF export carries byte-level BPE only "
                         "(a Loom 'char' tokenizer has no llama.cpp equivalent)",
                         "export with --format hf, or train the model on a `loom tokenizer train --kind bpe` tokenizer")
    pre = pre_override or pre_tokenizer_name(data)
    vocab = tokenizer.get_vocab()
    by_id = {i: t for t, i in vocab.items()}
    special = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    added = {t.content for t in tokenizer.added_tokens_decoder.values()}
    if max(by_id) >= n_vocab:
        raise InputError(f"the tokenizer has ids up to {max(by_id)} but the model only {n_vocab} embedding rows",
                         "export a model saved with its own tokenizer")
    tokens, types = [], []
    for i in range(n_vocab):
        token = by_id.get(i)
        if token is None:  # embedding rows past the tokenizer (vocab padded for speed): never produced
            tokens.append(f"[PAD{i}]")
            types.append(5)  # UNUSED
        else:
            tokens.append(token)
            types.append(3 if token in special else 4 if token in added else 1)  # CONTROL / USER_DEFINED / NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    eos = tokenizer.eos_token_id
    return {"tokens": tokens, "types": types, "merges": merges, "pre": pre,
            "bos": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos, "eos": eos,
            "eot": end_of_turn_id(tokenizer), "pad": tokenizer.pad_token_id, "add_bos": _adds_bos(tokenizer),
            "chat_template": tokenizer.chat_template or ""}


def _steps(pre: dict | None) -> list[dict]:
    if not pre:
        return []
    return pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]


# -- tensors -------------------------------------------------------------------------------------

def _permute_rotary(w: np.ndarray, n_head: int) -> np.ndarray:
    """[n_head * head_dim, d_in] rows from HF's half-split rotary order to llama.cpp's interleaved one:
    per head, rows (0..h/2-1, h/2..h-1) become (0, h/2, 1, h/2+1, ...)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _gguf_tensors(model, arch: str):
    """(llama.cpp name, float32 array) for every weight, in llama.cpp's order and layout."""
    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    state = model.state_dict()
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for hf_name, name in _TOP_TENSORS.items():
        if hf_name == "lm_head.weight" and (tied or hf_name not in state):
            continue  # tied: llama.cpp reuses token_embd as the output matrix when output.weight is absent
        if hf_name == "model.norm.weight":
            continue  # written after the layers, as llama.cpp's converter does
        yield name, state[hf_name]
    for i in range(cfg.num_hidden_layers):
        for hf_module, short in _LAYER_TENSORS.items():
            for kind in ("weight", "bias"):
                key = f"model.layers.{i}.{hf_module}.{kind}"
                if key not in state:
                    continue
                w = state[key].float().numpy()
                if arch == "llama" and short in ("attn_q", "attn_k"):
                    w = _permute_rotary(w, n_head if short == "attn_q" else n_kv)
                yield f"blk.{i}.{short}.{kind}", w
    yield "output_norm.weight", state["model.norm.weight"]


def _encode_tensor(array, quant: str):
    """(data, raw GGML type or None) for the writer."""
    import gguf

    data = array.float().numpy() if hasattr(array, "float") else np.asarray(array, dtype=np.float32)
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim == 1:
        return data, None
    if quant == "q8_0" and data.shape[-1] % _Q8_BLOCK == 0:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    return data.astype(np.float16), None


# -- the file ------------------------------------------------------------------------------------

def write_gguf(model, tokenizer, out: Path, quant: str = "q8_0", name: str = "", pre_override: str | None = None,
               progress: bool = True, embeddings_f16: bool = False) -> GGUFSummary:
    """Write `model` + `tokenizer` to `out` atomically (a temporary sibling renamed into place)."""
    import gguf

    if quant not in QUANTS:
        raise InputError(f"unknown quantisation {quant!r}", f"choose one of: {', '.join(QUANTS)}")
    arch = architecture_of(model)
    cfg = model.config
    n_vocab = model.get_input_embeddings().weight.shape[0]
    tok = tokenizer_fields(tokenizer, n_vocab, pre_override)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    counts: dict[str, int] = {}
    try:
        with atomic.guarded(out):
            writer = gguf.GGUFWriter(tmp, arch)
            writer.add_type(gguf.GGUFType.MODEL)
            writer.add_name(name or arch)
            writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
            writer.add_context_length(cfg.max_position_embeddings)
            writer.add_embedding_length(cfg.hidden_size)
            writer.add_block_count(cfg.num_hidden_layers)
            writer.add_feed_forward_length(cfg.intermediate_size)
            writer.add_head_count(cfg.num_attention_heads)
            writer.add_head_count_kv(cfg.num_key_value_heads or cfg.num_attention_heads)
            writer.add_rope_dimension_count(head_dim)
            if head_dim != cfg.hidden_size // cfg.num_attention_heads:
                writer.add_key_length(head_dim)
                writer.add_value_length(head_dim)
            rope = getattr(cfg, "rope_parameters", None) or {}
            writer.add_rope_freq_base(float(rope.get("rope_theta") or getattr(cfg, "rope_theta", 10000.0)))
            writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
            writer.add_vocab_size(n_vocab)
            _add_tokenizer(writer, tok)
            for tname, array in _gguf_tensors(model, arch):
                keep = embeddings_f16 and tname in ("token_embd.weight", "output.weight")
                data, raw = _encode_tensor(array, "f16" if keep else quant)
                kind = raw.name if raw is not None else ("F32" if data.dtype == np.float32 else "F16")
                counts[kind] = counts.get(kind, 0) + 1
                writer.add_tensor(tname, data, raw_dtype=raw)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file(progress=progress)
            writer.close()
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return GGUFSummary(path=str(out), architecture=arch, quant=quant, bytes=out.stat().st_size,
                       tensors=sum(counts.values()), tensor_types=counts, vocab=n_vocab, pre_tokenizer=tok["pre"],
                       bos_id=tok["bos"], eos_id=tok["eos"], eot_id=tok["eot"], chat_template=bool(tok["chat_template"]))


def _add_tokenizer(writer, tok: dict) -> None:
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
    writer.add_tokenizer_pre(tok["pre"])
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(tok["types"])
    writer.add_token_merges(tok["merges"])
    if tok["bos"] is not None:
        writer.add_bos_token_id(tok["bos"])
    if tok["eos"] is not None:
        writer.add_eos_token_id(tok["eos"])
    if tok["eot"] is not None:
        writer.add_eot_token_id(tok["eot"])
    if tok["pad"] is not None:
        writer.add_pad_token_id(tok["pad"])
    writer.add_add_bos_token(tok["add_bos"])
    writer.add_add_eos_token(False)
    if tok["chat_template"]:
        writer.add_chat_template(tok["chat_template"])


def read_metadata(path: Path) -> dict:
    """The GGUF's scalar and string metadata (token lists left out), e.g. for `loom models show`."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    meta = {}
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
            continue
        try:
            meta[key] = f.contents()
        except Exception:  # a field type contents() cannot decode: leave it out
            continue
    meta["tensors"] = len(reader.tensors)
    return meta
