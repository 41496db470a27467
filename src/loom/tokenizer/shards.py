"""`loom data tokenize`: a prepared dataset -> train.bin / val.bin (memory-mapped token ids) + meta.json.

Layout inside the dataset folder:
    train.bin, val.bin   flat arrays of token ids, uint16 when the vocabulary fits, else uint32;
                         each document is followed by the end-of-text id
    meta.json            tokenizer (name, path, sha256 of tokenizer.json), dtype, counts; written last,
                         so its presence means the shards are complete
Documents go to validation by a seeded hash of their index, so the split is stable and streams.
When that leaves a split empty (a corpus of one or a few documents), the token stream is cut instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import xxhash
from tqdm import tqdm

from loom import atomic, home
from loom.config import TokenizeConfig
from loom.data.prepare import documents_path, iter_documents
from loom.errors import MismatchError, NotFoundError
from loom.tokenizer.load import load_tokenizer, resolve_tokenizer_dir


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's canonical serialisation (the Rust side's to_str()), so a copy saved
    next to a model compares equal to the original."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8")).hexdigest()


def tokenize_dataset(name: str, tokenizer: str, cfg: TokenizeConfig, progress: bool = True) -> dict:
    docs_file = documents_path(name)
    ds_dir = docs_file.parent
    tok_dir = resolve_tokenizer_dir(tokenizer)
    tok = load_tokenizer(str(tok_dir))
    eos = tok.eos_token_id
    dtype = np.uint16 if len(tok) <= 2**16 else np.uint32
    counts = {"train": [0, 0], "val": [0, 0]}  # [documents, tokens]
    with open(docs_file, "rb") as f:
        n_docs = sum(1 for _ in f)
    (ds_dir / "meta.json").unlink(missing_ok=True)  # shards are about to change
    bar = tqdm(total=n_docs, desc=f"tokenize {name}", unit=" docs", disable=not progress, dynamic_ncols=True)
    with atomic.file_writer(ds_dir / "train.bin", "wb") as train_f, atomic.file_writer(ds_dir / "val.bin", "wb") as val_f:
        batch: list[str] = []
        index = 0
        for text in iter_documents(docs_file):
            batch.append(text)
            if len(batch) == cfg.batch_docs:
                index = _write_batch(tok, batch, index, eos, dtype, cfg, train_f, val_f, counts)
                bar.update(len(batch))
                batch = []
        if batch:
            _write_batch(tok, batch, index, eos, dtype, cfg, train_f, val_f, counts)
            bar.update(len(batch))
    bar.close()
    split_by = "documents"
    if cfg.val_fraction > 0 and (counts["val"][1] < 2 or counts["train"][1] == 0):
        split_by = _split_stream(ds_dir, dtype, cfg.val_fraction, counts)
    meta = {
        "dataset": name,
        "tokenizer": {"name": tok_dir.name, "path": str(tok_dir.resolve()), "sha256": tokenizer_fingerprint(tok)},
        "vocab_size": len(tok),
        "eos_id": eos,
        "dtype": np.dtype(dtype).name,
        "train_documents": counts["train"][0],
        "train_tokens": counts["train"][1],
        "val_documents": counts["val"][0],
        "val_tokens": counts["val"][1],
        "split_by": split_by,
        "config": cfg.model_dump(),
    }
    atomic.write_json(ds_dir / "meta.json", meta)
    return meta


def _write_batch(tok, batch, index, eos, dtype, cfg, train_f, val_f, counts) -> int:
    encodings = tok.backend_tokenizer.encode_batch(batch, add_special_tokens=False)
    threshold = int(cfg.val_fraction * 2**64)
    for enc in encodings:
        ids = np.asarray(enc.ids + [eos], dtype=dtype)
        split = "val" if xxhash.xxh3_64_intdigest(f"{cfg.seed}:{index}".encode()) < threshold else "train"
        (val_f if split == "val" else train_f).write(ids.tobytes())
        counts[split][0] += 1
        counts[split][1] += len(ids)
        index += 1
    return index


def _split_stream(ds_dir: Path, dtype, fraction: float, counts: dict) -> str:
    """Too few documents to split by document (a one-document .txt hashes wholly into train or into
    val): split the token stream instead, the last `fraction` of tokens becoming validation."""
    stream = np.concatenate([np.fromfile(ds_dir / f"{s}.bin", dtype=dtype) for s in ("train", "val")])
    n_val = max(2, int(len(stream) * fraction))
    if len(stream) < 2 * n_val:
        return "documents"  # a handful of tokens: nothing sensible to hold out (pretrain says so)
    atomic.write_bytes(ds_dir / "val.bin", stream[-n_val:].tobytes())
    atomic.write_bytes(ds_dir / "train.bin", stream[:-n_val].tobytes())
    docs = counts["train"][0] + counts["val"][0]
    counts["train"] = [docs, len(stream) - n_val]
    counts["val"] = [0, n_val]  # a cut through the token stream, not whole documents
    return "token stream (too few documents to hold whole ones out)"


def load_meta(name: str) -> dict:
    import json

    ds_dir = home.dataset_dir(name)
    meta_path = ds_dir / "meta.json"
    if not meta_path.is_file():
        if (ds_dir / "documents.jsonl").is_file():
            raise NotFoundError(f"dataset {name!r} is not tokenized yet", f"run `loom data tokenize {name} --tokenizer TOKENIZER`")
        documents_path(name)  # raises NotFoundError listing existing datasets
    return json.loads(meta_path.read_text(encoding="utf-8"))


def open_split(name: str, split: str) -> tuple[np.ndarray, dict]:
    """Memory-mapped token ids of one split + the dataset's meta."""
    meta = load_meta(name)
    path = home.dataset_dir(name) / f"{split}.bin"
    data = np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r") if path.stat().st_size else np.zeros(0, np.uint16)
    return data, meta


def check_tokenizer_matches(meta: dict, tokenizer, what: str) -> None:
    """Training or evaluating a model on shards made by another tokenizer is silently wrong: refuse it."""
    if meta["tokenizer"]["sha256"] != tokenizer_fingerprint(tokenizer):
        raise MismatchError(
            f"dataset {meta['dataset']!r} was tokenized with tokenizer {meta['tokenizer']['name']!r}, not the {what}'s tokenizer",
            f"re-run `loom data tokenize {meta['dataset']} --tokenizer <the {what}'s tokenizer>` or pick the matching {what}",
        )
