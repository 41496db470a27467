"""Batches for instruction tuning, and the loss over assistant tokens only.

Rows are right-padded: with causal attention a real token never sees the padding after it, so no
attention mask is needed and the fast causal kernel runs. Without packing, rows are grouped by
length (shuffled, then sorted within windows of 64 batches), so a batch pads to a similar length.
With packing, examples are placed first-fit into rows of max_len tokens, and each row's position ids
restart at 0 for every example: transformers then builds a block-diagonal causal mask from the
position ids (no example attends to another), so a packed example's loss equals its loss alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from loom.tokenizer.chat import IGNORE, Encoded

SORT_WINDOW = 64  # batches per length-sorting window


@dataclass
class Row:
    input_ids: list[int]
    labels: list[int]
    positions: list[int] | None = None  # packed rows only: restarts at 0 for each example


def pack(examples: list[Encoded], max_len: int) -> list[Row]:
    """First-fit decreasing: longest examples first, each into the first row with room."""
    rows: list[Row] = []
    room: list[int] = []
    for ex in sorted(examples, key=lambda e: -len(e.input_ids)):
        n = len(ex.input_ids)
        slot = next((i for i, free in enumerate(room) if free >= n), None)
        if slot is None:
            rows.append(Row([], [], []))
            room.append(max_len)
            slot = len(rows) - 1
        row = rows[slot]
        row.input_ids += ex.input_ids
        row.labels += ex.labels
        row.positions += list(range(n))
        room[slot] -= n
    return rows


def make_rows(examples: list[Encoded], max_len: int, packing: bool) -> list[Row]:
    return pack(examples, max_len) if packing else [Row(e.input_ids, e.labels) for e in examples]


def epoch_batches(rows: list[Row], batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[Row]]:
    """This rank's batches for one epoch: shuffled, length-grouped; every rank gets the same count."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(rows)))
    rng.shuffle(order)
    window = batch_size * SORT_WINDOW
    grouped = []
    for start in range(0, len(order), window):
        grouped += sorted(order[start:start + window], key=lambda i: -len(rows[i].input_ids))
    batches = [[rows[i] for i in grouped[s:s + batch_size]] for s in range(0, len(grouped), batch_size)]
    rng.shuffle(batches)
    usable = len(batches) - len(batches) % world if world > 1 else len(batches)
    return batches[rank:usable:world]


def split_by_tokens(batch: list[Row], budget: int) -> list[list[Row]]:
    """Consecutive groups of rows whose padded size (rows x longest row) stays within `budget` tokens;
    a row longer than the budget goes alone. budget 0 = one group. The loss is summed over learnt
    tokens and divided by the step's total, so the groups give the step the batch would have given."""
    if not budget:
        return [batch]
    groups: list[list[Row]] = []
    width = 0  # longest row of the last group
    for row in batch:
        n = len(row.input_ids)
        if groups and max(width, n) * (len(groups[-1]) + 1) <= budget:
            groups[-1].append(row)
            width = max(width, n)
        else:
            groups.append([row])
            width = n
    return groups


def collate(batch: list[Row], pad_id: int) -> dict[str, torch.Tensor | None]:
    """input_ids, labels [B, T] (T = longest row), positions [B, T] for packed rows else None, and
    tokens: the real (not padding) tokens in the batch."""
    width = max(len(r.input_ids) for r in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    packed = batch[0].positions is not None
    positions = torch.zeros((len(batch), width), dtype=torch.long) if packed else None
    for r, row in enumerate(batch):
        n = len(row.input_ids)
        ids[r, :n] = torch.tensor(row.input_ids)
        labels[r, :n] = torch.tensor(row.labels)
        if packed:
            # the padding continues the last example's positions: after it, so nothing real attends to it
            last = row.positions[-1] if row.positions else -1
            positions[r, :n] = torch.tensor(row.positions)
            positions[r, n:] = torch.arange(last + 1, last + 1 + width - n)
    return {"input_ids": ids, "labels": labels, "positions": positions, "tokens": sum(len(r.input_ids) for r in batch)}


def learnt_tokens(batch: dict) -> int:
    """Tokens the loss is taken on: labels after the shift by one."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def decoder_and_head(model):
    """(decoder, output head) of a causal LM, through a peft wrapper; None when the model is not laid
    out as .model + .lm_head (then the full forward pass is used)."""
    inner = model.module if hasattr(model, "module") else model  # DDP
    causal = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    decoder, head = getattr(causal, "model", None), getattr(causal, "lm_head", None)
    return (decoder, head) if decoder is not None and head is not None else None


def sft_loss_sum(model, batch: dict, device) -> torch.Tensor:
    """Summed cross-entropy over the learnt tokens of one batch (the caller divides by the step's
    learnt-token count, so every token weighs the same whatever batch it fell in).

    The output head runs only at learnt positions: for a 49k-word vocabulary the full [B, T, V]
    logits of a batch of 8 x 512 would be 800 MB of fp32, most of it for prompt tokens."""
    ids = batch["input_ids"].to(device, non_blocking=True)
    labels = batch["labels"].to(device, non_blocking=True)
    positions = batch["positions"].to(device, non_blocking=True) if batch["positions"] is not None else None
    targets = labels[:, 1:]
    keep = targets != IGNORE  # [B, T-1]: position t predicts token t+1
    parts = decoder_and_head(model)
    if parts is not None and not hasattr(model, "module"):
        decoder, head = parts
        hidden = decoder(input_ids=ids, position_ids=positions, use_cache=False).last_hidden_state  # [B, T, d]
        logits = head(hidden[:, :-1][keep])  # [N, V]
    else:  # DDP must see its own forward (it hooks the gradient all-reduce there)
        logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits[:, :-1][keep]
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum")
