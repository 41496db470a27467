"""Serving under load: aggregate streamed tokens/s with 1 and 16 concurrent clients on the same
local model (smollm2 on the default engine, or --engine), with continuous batching; time to first
token, errors.

Target: tokens/s at 16 clients >= 4x the single-client figure, zero errors.
    python bench/serve_load.py [--model smollm2] [--tokens 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import openai

from loom.serve.process import ServerProcess

PROMPTS = ["Tell me a long story about a lighthouse keeper.", "Explain how rain forms, step by step.",
           "Write a letter to a friend about your garden.", "Describe a busy market in the morning."]


async def one_client(client: openai.AsyncOpenAI, model: str, tokens: int, rounds: int, i: int, out: dict) -> None:
    for r in range(rounds):
        start = time.perf_counter()
        first = None
        try:
            stream = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": PROMPTS[(i + r) % len(PROMPTS)]}], max_tokens=tokens,
                temperature=0.8, seed=i * 100 + r, stream=True, stream_options={"include_usage": True})
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - start
                if chunk.usage:
                    out["tokens"] += chunk.usage.completion_tokens
            out["ttft"].append(first if first is not None else time.perf_counter() - start)
        except Exception as e:  # noqa: BLE001  counted, not fatal: the figure is the error count
            out["errors"].append(repr(e))


async def load(url: str, model: str, clients: int, tokens: int, rounds: int) -> dict:
    out = {"tokens": 0, "ttft": [], "errors": []}
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
    start = time.perf_counter()
    await asyncio.gather(*(one_client(client, model, tokens, rounds, i, out) for i in range(clients)))
    seconds = time.perf_counter() - start
    await client.close()
    ttft = sorted(out["ttft"])
    return {"clients": clients, "seconds": seconds, "tokens": out["tokens"], "tok_s": out["tokens"] / seconds,
            "ttft_p50": statistics.median(ttft) if ttft else float("nan"),
            "ttft_p99": ttft[min(len(ttft) - 1, int(0.99 * len(ttft)))] if ttft else float("nan"), "errors": out["errors"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tokens", type=int, default=64, help="max_tokens per request")
    ap.add_argument("--rounds", type=int, default=2, help="requests per client, one after another")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--engine", default="auto", help="auto (the default engine: llama.cpp for GGUF on a CPU) | llama.cpp | transformers")
    args = ap.parse_args()
    home = Path(os.environ.get("LOOM_HOME") or tempfile.mkdtemp(prefix="loom-bench-"))
    with ServerProcess(home, "--preload", args.model, "--engine", args.engine, "--max-batch", str(args.concurrency),
                       start_timeout=300) as server:
        asyncio.run(load(server.url, args.model, 1, 8, 1))  # warm-up: first-call allocations
        single = asyncio.run(load(server.url, args.model, 1, args.tokens, args.rounds))
        many = asyncio.run(load(server.url, args.model, args.concurrency, args.tokens, args.rounds))
    for r in (single, many):
        print(f"{r['clients']:>2} client(s): {r['tokens']} tokens in {r['seconds']:.1f} s = {r['tok_s']:.1f} tok/s; "
              f"TTFT p50 {r['ttft_p50'] * 1000:.0f} ms, p99 {r['ttft_p99'] * 1000:.0f} ms; errors {len(r['errors'])}")
        for e in r["errors"][:3]:
            print("   ", e)
    ratio = many["tok_s"] / single["tok_s"]
    ok = ratio >= 4.0 and not single["errors"] and not many["errors"]
    print(f"ratio {ratio:.2f}x aggregate tokens/s at {args.concurrency} clients vs 1 (target >= 4.0x, zero errors): "
          f"{'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
