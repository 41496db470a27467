"""Load a catalog entry (HF folder, LoRA run or GGUF file) as a transformers causal LM + tokenizer.

GGUF files are dequantised by transformers (`gguf_file=`), which takes ~20 s for a 135M model.
The dequantised fp32 copy is cached as a standard HF folder under $LOOM_HOME/cache/gguf/, so later
loads take about a second. (A dequantised model cannot be save_pretrained directly: its config
still claims GGUF quantisation, so the cache rebuilds a clean model from the config first.)
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from loom import atomic, catalog, home
from loom.catalog import ModelEntry
from loom.errors import InputError, NotFoundError
from loom.model import adapters


def gguf_cache_name(path: Path) -> str:
    """STEM-HASH naming a GGUF file's derived copies in cache/: the hash covers its resolved path, size
    and mtime, so a replaced file gets fresh copies."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return f"{path.stem}-{key}"


def _gguf_cache_dir(path: Path) -> Path:
    return home.cache_dir("gguf") / gguf_cache_name(path)


def _load_gguf(path: Path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    cache = _gguf_cache_dir(path)
    if (cache / "config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(cache, dtype=torch.float32), AutoTokenizer.from_pretrained(cache)
    try:
        import accelerate  # noqa: F401  transformers' GGUF loader needs it
        import gguf  # noqa: F401
    except ImportError as e:
        raise InputError("loading GGUF models needs the packages gguf and accelerate", "pip install gguf accelerate") from e
    logging.getLogger("transformers").setLevel(logging.ERROR)
    quantised = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict(), strict=False)
    model.tie_weights()
    model.generation_config = quantised.generation_config
    with atomic.folder_writer(cache, replace=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return model.eval(), tokenizer


def gguf_hf_folder(path: Path) -> Path:
    """The dequantised HF copy of a GGUF file (built on first use): what fine-tuning starts from."""
    cache = _gguf_cache_dir(path)
    if not (cache / "config.json").is_file():
        _load_gguf(path)
    return cache


def base_folder(name: str) -> Path:
    """The HF folder a chat model's weights are read from: a GGUF model's dequantised fp32 copy
    (built once, cached), an HF folder or Loom run as it is. Adapter runs must be merged first."""
    entry = catalog.resolve(name)
    if entry.backend == "gguf":
        return gguf_hf_folder(Path(entry.path))
    if entry.backend != "hf" or entry.task != "generate":
        raise InputError(f"{name!r} is a {entry.task} model ({entry.backend}); instruction tuning needs a causal LM",
                         "pick a chat model from `loom models list` (smollm2, qwen2.5-0.5b, a Loom run or an HF folder)")
    path = Path(entry.path)
    if adapters.is_adapter(path):
        raise InputError(f"{name!r} is a LoRA run; it cannot be the base of another run as it is",
                         f"merge it first: `loom models merge {name}`, then tune the merged model")
    return path


def adapter_base(path: Path) -> Path:
    """The base folder of an adapter: the one recorded, else rebuilt from the base's catalog name (a
    cleared GGUF cache is rebuilt rather than failing)."""
    meta = adapters.read_meta(path)
    recorded = Path(json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path") or "")
    if str(recorded) and (recorded / "config.json").is_file():
        return recorded
    if meta.get("base"):
        return base_folder(meta["base"])
    raise NotFoundError(f"the base model of adapter {path} is gone ({recorded})", "re-register the base model, or retrain the run")


def load_tokenizer(entry: ModelEntry):
    """Only the tokenizer (fast: lets callers validate inputs before loading weights). A GGUF file's
    tokenizer is rebuilt from its metadata once (~8 s for SmolLM2, ~19 s for Qwen2.5's 151k tokens)
    and saved as a tokenizer folder under cache/tokenizers/, which loads in ~0.4-1.6 s."""
    from transformers import AutoTokenizer

    path = Path(entry.path)
    if entry.backend == "gguf":
        for cache in (_gguf_cache_dir(path), _gguf_tokenizer_dir(path)):
            if (cache / "tokenizer_config.json").is_file():
                return AutoTokenizer.from_pretrained(cache)
        logging.getLogger("transformers").setLevel(logging.ERROR)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        with atomic.folder_writer(_gguf_tokenizer_dir(path), replace=True) as tmp:
            tokenizer.save_pretrained(tmp)
        return tokenizer
    return AutoTokenizer.from_pretrained(path)


def _gguf_tokenizer_dir(path: Path) -> Path:
    return home.cache_dir("tokenizers") / _gguf_cache_dir(path).name


def load_model(entry: ModelEntry):
    """(model in eval mode, tokenizer) for a catalog entry."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(entry.path)
    if entry.backend == "gguf":
        return _load_gguf(path)
    if adapters.is_adapter(path):  # a LoRA run: base + adapters, merged in memory (fp32, exact up to rounding)
        return adapters.load_adapter_model(path, adapter_base(path))
    if not (path / "config.json").is_file():
        raise InputError(f"{path} is not a model folder (no config.json)", "pass a Loom run name or a Hugging Face model folder")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(path)
