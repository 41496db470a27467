"""Single-stream decode speed on a GGUF file: Loom's fastest local path (the llama.cpp engine
behind Loom's backend contract) against llama-cpp-python driving the same file directly, same run.
The transformers engine (dequantised fp32, what batching uses) is reported for context.

Target: Loom >= 0.9x llama.cpp. Needs the optional extra: pip install llama-cpp-python==0.3.36
    python bench/decode_speed.py [--model smollm2] [--tokens 128] [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from loom import catalog, registry
from loom.backends.base import Request, Sampling

PROMPT = [{"role": "user", "content": "Write a short story about a fox who learns to sail."}]


def loom_rate(backend, tokens: int) -> float:
    start, produced = time.perf_counter(), 0
    for chunk in backend.stream(Request(Sampling(max_tokens=tokens, temperature=0), messages=PROMPT)):
        produced = chunk.completion_tokens or produced
    return produced / (time.perf_counter() - start)


def llama_cpp_rate(llm, tokens: int) -> float:
    start = time.perf_counter()
    out = llm.create_chat_completion(PROMPT, max_tokens=tokens, temperature=0)
    return out["usage"]["completion_tokens"] / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    from llama_cpp import Llama

    entry = catalog.resolve(args.model)
    reference = Llama(model_path=entry.path, n_ctx=4096, n_threads=os.cpu_count(), verbose=False)
    loom = registry.open_backend(args.model, engine="llama.cpp")
    loom_rate(loom, 8), llama_cpp_rate(reference, 8)  # warm-up
    ours, theirs = [], []
    for _ in range(args.trials):  # alternate so machine noise hits both alike
        ours.append(loom_rate(loom, args.tokens))
        theirs.append(llama_cpp_rate(reference, args.tokens))
    transformers = registry.open_backend(args.model, engine="transformers")
    fp32 = loom_rate(transformers, min(args.tokens, 64))
    transformers.close()
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"llama-cpp-python direct:        {t:.1f} tok/s (median of {args.trials})")
    print(f"loom, llama.cpp engine:         {o:.1f} tok/s")
    print(f"loom, transformers engine fp32: {fp32:.1f} tok/s (batched serving path, single stream)")
    print(f"ratio {o / t:.3f}x Loom vs llama.cpp (target >= 0.9x): {'PASS' if o / t >= 0.9 else 'FAIL'}")


if __name__ == "__main__":
    main()
