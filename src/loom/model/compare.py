"""Two models, one set of token sequences: how far apart are their next-token logits? (What a merge
or an export changed: the largest absolute logit difference and the top-1 agreement.)"""

from __future__ import annotations


def logits(model, examples: list[list[int]]) -> list:
    """[len(ids), vocab] float32 CPU logits per example (one forward pass each, no cache)."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        return [model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0].float().cpu() for ids in examples]


def compare(before: list, after: list) -> dict:
    """max |a - b| over every position and token, and the share of positions whose argmax agrees.
    Rows past the smaller vocabulary (padding rows a file left out) are not compared."""
    diff, agree, positions = 0.0, 0, 0
    for a, b in zip(before, after):
        n = min(a.shape[-1], b.shape[-1])
        a, b = a[:, :n], b[:, :n]
        diff = max(diff, float((a - b).abs().max()))
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        positions += a.shape[0]
    return {"positions": positions, "max_abs_logit_diff": diff, "top1_agreement": round(agree / max(1, positions), 6)}
