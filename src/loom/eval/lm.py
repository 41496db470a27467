"""`loom eval perplexity`: mean next-token cross-entropy and perplexity of a causal LM on a
tokenized dataset split or a text file, over non-overlapping windows of the model's context."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from loom.tokenizer.shards import check_tokenizer_matches, open_split
from loom.data.sources import expand_inputs, read_documents
from loom.errors import InputError


def file_tokens(path: str, tokenizer, text_field: str = "text") -> np.ndarray:
    """All documents of a file tokenized with the model's tokenizer, each followed by EOS."""
    ids: list[int] = []
    for p in expand_inputs([path]):
        for text in read_documents(p, text_field=text_field):
            ids.extend(tokenizer.encode(text, add_special_tokens=False))
            if tokenizer.eos_token_id is not None:
                ids.append(tokenizer.eos_token_id)
    if len(ids) < 2:
        raise InputError(f"{path} holds fewer than 2 tokens of text", "pass a file with some text in it")
    return np.asarray(ids, dtype=np.int64)


def dataset_tokens(name: str, split: str, tokenizer) -> np.ndarray:
    tokens, meta = open_split(name, split)
    check_tokenizer_matches(meta, tokenizer, "model")
    if len(tokens) < 2:
        raise InputError(f"the {split} split of {name!r} has {len(tokens)} tokens", "use --split train or a bigger dataset")
    return tokens


@torch.no_grad()
def perplexity(model, tokens: np.ndarray, seq_len: int, batch_size: int = 8, max_tokens: int = 0, progress: bool = True) -> dict:
    """Windows of seq_len+1 tokens (the last one only as a target); every token is predicted once."""
    if max_tokens and len(tokens) > max_tokens:
        tokens = tokens[:max_tokens]
    limit = getattr(model.config, "max_position_embeddings", seq_len) or seq_len
    seq_len = max(1, min(seq_len, limit, len(tokens) - 1))
    starts = list(range(0, len(tokens) - 1, seq_len))
    nll_sum, count = 0.0, 0
    t0 = time.perf_counter()
    model.eval()
    for i in tqdm(range(0, len(starts), batch_size), desc="perplexity", unit="batch", disable=not progress):
        chunk = [np.asarray(tokens[s : s + seq_len + 1], dtype=np.int64) for s in starts[i : i + batch_size]]
        width = max(len(c) for c in chunk)
        x = torch.zeros((len(chunk), width - 1), dtype=torch.long)
        y = torch.full((len(chunk), width - 1), -100, dtype=torch.long)  # -100: padding, ignored
        for row, c in enumerate(chunk):
            x[row, : len(c) - 1] = torch.from_numpy(c[:-1])
            y[row, : len(c) - 1] = torch.from_numpy(c[1:])
        logits = model(input_ids=x).logits.float()
        nll_sum += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100, reduction="sum").item()
        count += int((y != -100).sum())
    loss = nll_sum / count
    return {
        "tokens": count,
        "loss": loss,
        "perplexity": math.exp(min(loss, 700)),
        "bits_per_token": loss / math.log(2),
        "seq_len": seq_len,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def evaluate_perplexity(model_name: str, data: str, split: str = "val", seq_len: int = 512, batch_size: int = 8,
                        max_tokens: int = 0, progress: bool = True) -> dict:
    from loom import catalog
    from loom.model.load import load_model, load_tokenizer

    entry = catalog.resolve(model_name)
    tokenizer = load_tokenizer(entry)  # validate the data against it before loading weights
    is_file = Path(data).exists()
    tokens = file_tokens(data, tokenizer) if is_file else dataset_tokens(data, split, tokenizer)
    model, _ = load_model(entry)
    result = perplexity(model, tokens, seq_len, batch_size, max_tokens, progress)
    return {"model": entry.name, "data": data, "split": None if is_file else split} | result
