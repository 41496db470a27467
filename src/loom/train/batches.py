"""Random windows from a memory-mapped token array, driven by an explicit torch.Generator so the
data position is part of the checkpoint (resume draws exactly the windows an unbroken run would)."""

from __future__ import annotations

import numpy as np
import torch

from loom.errors import InputError


class WindowSampler:
    """x, y = sampler.next(): int64 [batch, seq_len] inputs and next-token targets."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int, split: str = "train") -> None:
        if len(tokens) < seq_len + 1:
            raise InputError(
                f"the {split} split has {len(tokens)} tokens, fewer than seq_len + 1 = {seq_len + 1}",
                "use more data, or a smaller --seq-len (train.seq_len)",
            )
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(self.tokens) - self.seq_len, (self.batch_size,), generator=self.generator)
        rows = [np.asarray(self.tokens[s : s + self.seq_len + 1], dtype=np.int64) for s in starts.tolist()]
        block = torch.from_numpy(np.stack(rows))
        return block[:, :-1], block[:, 1:]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
