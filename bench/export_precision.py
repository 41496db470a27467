"""Where does q8_0 lose top-1 agreement? (issue 34.6) SmolLM2 (the built-in smollm2, read as fp32)
against copies of itself with one tensor group at a time rounded through q8_0 (blocks of 32 values,
one f16 scale: what the GGUF holds), then whole exports run by llama.cpp itself.

1. In transformers, one group q8_0-rounded, the rest fp32: top-1 agreement with fp32 over the
   export check's positions (loom.model.export.verify: English, Chinese, code, two chat renderings),
   and the same with f16 rounding as the floor. Groups: token_embd (tied: also the output matrix),
   attn_q/k/v/o, ffn_gate/up/down, everything.
2. Exports through `write_gguf`: f16, q8_0, and q8_0 with token_embd/output kept f16
   (`embeddings_f16=True`, llama-quantize's --token-embedding-type/--output-tensor-type idea); file
   size and llama.cpp's top-1 agreement with the fp32 source, how many disagreements sit at near-ties
   (fp32 top-2 margin < 0.5 logit), and the agreement over the confident positions.

Needs llama-cpp-python (make bench builds it).
    python bench/export_precision.py [--model smollm2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
GROUPS = {"token_embd (+ output)": ("embed_tokens", "lm_head"), "attn_q": ("q_proj",), "attn_k": ("k_proj",),
          "attn_v": ("v_proj",), "attn_output": ("o_proj",), "ffn_gate": ("gate_proj",), "ffn_up": ("up_proj",),
          "ffn_down": ("down_proj",), "everything": ("",)}


def rounded(w, kind: str):
    """w [out, in] through f16 or q8_0 and back to fp32 (q8_0 needs rows divisible by 32, else f16)."""
    import gguf
    import torch

    data = w.detach().float().numpy()
    if kind == "q8_0" and data.shape[-1] % 32 == 0:
        q = gguf.GGMLQuantizationType.Q8_0
        back = gguf.quants.dequantize(gguf.quants.quantize(data, q), q)
    else:
        back = data.astype(np.float16).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(back.reshape(data.shape)))


def agreement(reference, other) -> tuple[float, int, int, float]:
    """(top-1 agreement, disagreements, those at near-ties of the reference, confident agreement)."""
    from loom.model.compare import compare

    c = compare(reference, other)
    return c["top1_agreement"], c["flips"], c["flips"] - c["confident_flips"], c["confident_top1_agreement"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args()
    import torch

    from loom import catalog
    from loom.model.compare import NEAR_TIE, logits
    from loom.model.export.gguf_file import write_gguf
    from loom.model.export.verify import examples
    from loom.model.load import load_model

    model, tokenizer = load_model(catalog.resolve(args.model))
    model.eval()
    texts = examples(tokenizer, int(model.config.max_position_embeddings))
    reference = logits(model, texts)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {params / 1e6:.0f}M parameters, {sum(len(t) for t in texts)} positions; "
          f"near-tie = fp32 top-2 margin < {NEAR_TIE} logit\n")
    print(f"{'group rounded (rest fp32)':26} {'f16 agree':>9} {'q8_0 agree':>10} {'q8_0 flips (near-ties)':>23}")
    for label, keys in GROUPS.items():
        row = []
        for kind in ("f16", "q8_0"):
            state = {k: (rounded(v, kind) if v.dim() == 2 and any(key in k for key in keys) else v) for k, v in original.items()}
            model.load_state_dict(state)
            row.append(agreement(reference, logits(model, texts)))
        (f16, _, _, _), (q8, flips, ties, _) = row
        print(f"{label:26} {f16:9.4f} {q8:10.4f} {flips:>15} ({ties})")
    model.load_state_dict(original)

    from export import llama_cpp_logits  # bench/export.py: llama.cpp's own logits (logits_all)

    print(f"\n{'export (llama.cpp runs it)':42} {'MB':>6} {'top-1 agree':>11} {'flips (near-ties)':>18} {'confident agree':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, quant, keep in [("f16", "f16", False), ("q8_0, every matrix", "q8_0", False),
                                   ("q8_0, token_embd/output f16", "q8_0", True)]:
            path = Path(tmp) / f"{quant}-{keep}.gguf"
            write_gguf(model, tokenizer, path, quant, args.model, progress=False, embeddings_f16=keep)
            agree, flips, ties, sure = agreement(reference, [torch.as_tensor(x) for x in llama_cpp_logits(str(path), texts)])
            print(f"{label:42} {os.path.getsize(path) / 2**20:6.1f} {agree:11.4f} {flips:>10} ({ties}) {sure:15.4f}")


if __name__ == "__main__":
    main()
