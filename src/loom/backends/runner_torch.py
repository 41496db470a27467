"""The transformers side of the batching engine: one forward pass over a left-padded batch KV cache.

The batch's KV cache is left-padded: row r holds its real tokens at the right end of the
[B, heads, T, head_dim] tensors, and `mask` [B, T] marks real (1) vs padding (0) columns. Each row
keeps its own position ids (its count of real tokens), so padding never shifts RoPE positions.
A joining sequence is prefilled alone, then its cache is padded to the batch's length (or the batch
to its) and concatenated on the batch axis; finished or cancelled rows are dropped, and columns that
are padding in every remaining row are trimmed. Tensors are made where the model's weights are.
"""

from __future__ import annotations

import contextlib

import torch


class TorchRunner:
    def __init__(self, model, autocast=contextlib.nullcontext) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.autocast = autocast  # a context-manager factory: the runtime's autocast (bf16 on GPUs that have it)
        self._cache = None  # transformers DynamicCache holding the batch's rows
        self._mask: torch.Tensor | None = None  # [B, T] long

    capacity = None  # the KV cache grows with the batch: no shared pool to reserve room in

    def session(self):
        """The context every model call of a scheduling round runs in."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(self.autocast())
        return stack

    def prefill(self, ids: list[int]):
        """Run a new sequence's prompt alone: (last-position logits [V], its cache to admit)."""
        out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1)
        return out.logits[0, -1], (out.cache, len(ids))

    def prefill_many(self, prompts: list[list[int]]):
        """Each joining prompt alone (left-padding them into one forward would cost more than it saves
        at these batch sizes): a list of prefill results."""
        return [self.prefill(ids) for ids in prompts]

    def admit(self, pending) -> None:
        """Append a prefilled sequence as the batch's last row."""
        cache, length = pending
        new_mask = torch.ones(1, length, dtype=torch.long, device=self.device)
        if self._cache is None:
            self._cache, self._mask = cache, new_mask
            return
        width = self._mask.shape[1]
        pad_new, pad_batch = max(0, width - length), max(0, length - width)
        for mine, theirs in zip(self._cache.layers, cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, pad_batch), _left_pad(theirs.keys, pad_new)], dim=0)
            mine.values = torch.cat([_left_pad(mine.values, pad_batch), _left_pad(theirs.values, pad_new)], dim=0)
        self._mask = torch.cat([_left_pad(self._mask, pad_batch), _left_pad(new_mask, pad_new)], dim=0)

    def discard(self, pending) -> None:
        """A prefilled sequence that finished on its first token: its cache is simply dropped."""

    def step(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        """One token per row (rows in admission order) -> next-token logits [B, V]."""
        input_ids = torch.tensor([[t] for t in tokens], device=self.device)
        self._mask = torch.cat([self._mask, torch.ones(len(tokens), 1, dtype=torch.long, device=self.device)], dim=1)
        if len(tokens) == 1:  # one row holds no padding (joins and drops trim it): no mask or positions needed
            out = self.model(input_ids=input_ids, cache=self._cache, use_cache=True, logits_to_keep=1)
        else:
            out = self.model(input_ids=input_ids, attention_mask=self._mask,
                             position_ids=torch.tensor([[p] for p in positions], device=self.device),
                             cache=self._cache, use_cache=True, logits_to_keep=1)
        self._cache = out.cache
        return out.logits[:, -1]

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (indices into the current batch), in this order."""
        if not rows:
            self.reset()
            return
        index = torch.tensor(rows, device=self.device)
        mask = self._mask.index_select(0, index)
        first = int(mask.any(dim=0).nonzero()[0])  # leading columns that are padding in every row
        self._mask = mask[:, first:]
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, first:]
            layer.values = layer.values.index_select(0, index)[:, :, first:]

    def reset(self) -> None:
        self._cache, self._mask = None, None

    def close(self) -> None:
        self.reset()


def _left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
    """Zero-pad n columns on the left of the sequence axis (-2 for KV [B,H,T,D], -1 for a mask [B,T])."""
    if n == 0:
        return t
    axis = -1 if t.dim() == 2 else -2
    shape = list(t.shape)
    shape[axis] = n
    return torch.cat([t.new_zeros(shape), t], dim=axis)
