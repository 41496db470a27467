"""Two models, one set of token sequences: how far apart are their next-token logits? (What a merge
or an export changed: the largest absolute logit difference and the top-1 agreement.)"""

from __future__ import annotations


def logits(model, examples: list[list[int]]) -> list:
    """[len(ids), vocab] float32 CPU logits per example (one forward pass each, no cache)."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        return [model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0].float().cpu() for ids in examples]


NEAR_TIE = 0.5  # logits: where `before`'s two best tokens are closer than this, either may win after rounding


def compare(before: list, after: list) -> dict:
    """max |a - b| over every position and token, the share of positions whose argmax agrees, and that
    share over the confident positions only (before's top-2 margin >= NEAR_TIE logit). On SmolLM2 every
    q8_0 flip measured was at a near-tie (bench/export_precision.py): rounding noise spread over all
    matrices picks the other of two near-equal tokens; a confident choice does not move.
    Rows past the smaller vocabulary (padding rows a file left out) are not compared."""
    diff, agree, positions, confident, confident_agree = 0.0, 0, 0, 0, 0
    for a, b in zip(before, after):
        n = min(a.shape[-1], b.shape[-1])
        a, b = a[:, :n], b[:, :n]
        diff = max(diff, float((a - b).abs().max()))
        same = a.argmax(-1) == b.argmax(-1)
        top2 = a.topk(2, -1).values
        sure = (top2[:, 0] - top2[:, 1]) >= NEAR_TIE
        agree += int(same.sum())
        confident += int(sure.sum())
        confident_agree += int((same & sure).sum())
        positions += a.shape[0]
    return {"positions": positions, "max_abs_logit_diff": diff, "top1_agreement": round(agree / max(1, positions), 6),
            "confident_positions": confident, "confident_top1_agreement": round(confident_agree / max(1, confident), 6),
            "flips": positions - agree, "confident_flips": confident - confident_agree}
