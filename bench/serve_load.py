"""Serving under load: aggregate streamed tokens/s with 1 and 16 concurrent clients on the same
local model (smollm2 on the default engine, or --engine), with continuous batching; time to first
token, errors.

Target: tokens/s at 16 clients >= 4x the single-client figure, zero errors.

For a GGUF model on the llama.cpp engine the same run also measures the machine's ceiling:
llama.cpp itself (llama-cpp-python's C API, no Loom, no HTTP) decoding 1 and then 16 sequences per
llama_decode with the server's context settings. On a CPU with few cores batched decoding is
compute-bound, so that ratio bounds what any scheduler on top of llama.cpp can reach.
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


_RAW = """
import os, sys, time
import llama_cpp
from llama_cpp import _internals, _logger
_logger.set_verbose(False)
path, rows_max, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llama_cpp.llama_backend_init()
model = _internals.LlamaModel(path_model=path, params=llama_cpp.llama_model_default_params(), verbose=False)
params = llama_cpp.llama_context_default_params()
params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max, params.kv_unified = 16384, 512, 512, rows_max, True
params.n_threads = params.n_threads_batch = os.cpu_count()
ctx = _internals.LlamaContext(model=model, params=params, verbose=False)
batch = _internals.LlamaBatch(n_tokens=512, embd=0, n_seq_max=1, verbose=False)
def put(i, token, pos, seq):
    b = batch.batch
    b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, True
    b.seq_id[i][0] = seq
for rows in (1, rows_max):
    for seq in range(rows):  # a 32-token prompt per sequence, then `steps` one-token steps for all rows
        batch.reset()
        for i in range(32):
            put(i, 100 + 7 * i + seq, i, seq)
        batch.batch.n_tokens = 32
        ctx.decode(batch)
    start = time.perf_counter()
    for k in range(steps):
        batch.reset()
        for seq in range(rows):
            put(seq, 1000 + k + seq, 32 + k, seq)
        batch.batch.n_tokens = rows
        ctx.decode(batch)
    print(rows, rows * steps / (time.perf_counter() - start))
    for seq in range(rows):
        ctx.kv_cache_seq_rm(seq, -1, -1)
"""


def llama_cpp_ceiling(home: Path, model: str, rows: int, steps: int) -> dict[int, float] | None:
    """llama.cpp's own decode tokens/s at 1 and `rows` sequences per batch, on the file the server runs
    (None when the model is not a GGUF file on the llama.cpp engine)."""
    import subprocess
    import sys

    os.environ["LOOM_HOME"] = str(home)
    from loom import catalog
    from loom.backends.llamacpp import available, weights_file

    entry = catalog.resolve(model)
    if entry.backend != "gguf" or not available():
        return None
    out = subprocess.run([sys.executable, "-c", _RAW, weights_file(entry), str(rows), str(steps)],
                         capture_output=True, text=True, check=True)
    return {int(r): float(v) for r, v in (line.split() for line in out.stdout.strip().splitlines())}


def run_server(home: Path, args, *flags: str) -> tuple[dict, dict]:
    with ServerProcess(home, "--preload", args.model, "--engine", args.engine, "--max-batch", str(args.concurrency),
                       *flags, start_timeout=300) as server:
        asyncio.run(load(server.url, args.model, 1, 8, 1))  # warm-up: first-call allocations
        single = asyncio.run(load(server.url, args.model, 1, args.tokens, args.rounds))
        many = asyncio.run(load(server.url, args.model, args.concurrency, args.tokens, args.rounds))
    return single, many


def main() -> None:
    # Every side runs the same llama.cpp build, the portable one (the package's own): the server's engine
    # child, the in-process engine and the llama-cpp-python reference. bench/portable_build.py compares builds.
    os.environ.setdefault("LOOM_LLAMA_BUILDS", tempfile.mkdtemp(prefix="no-extra-builds-"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tokens", type=int, default=64, help="max_tokens per request")
    ap.add_argument("--rounds", type=int, default=2, help="requests per client, one after another")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=2, help="alternated runs of the child-process and in-process engines "
                    "compared (0: skip the comparison)")
    ap.add_argument("--engine", default="auto", help="auto (the default engine: llama.cpp for GGUF on a CPU) | llama.cpp | transformers")
    args = ap.parse_args()
    home = Path(os.environ.get("LOOM_HOME") or tempfile.mkdtemp(prefix="loom-bench-"))
    single, many = run_server(home, args)
    if args.engine in ("auto", "llama.cpp") and args.pairs:
        # issue 29: the engine's child process vs the server's own, alternated, mean of --pairs each
        runs: dict[str, list] = {"child": [(single, many)], "inline": []}
        for k in range(args.pairs):
            runs["inline"].append(run_server(home, args, "--in-process-engines"))
            if k + 1 < args.pairs:
                runs["child"].append(run_server(home, args))
        for i, label in ((0, "1 client"), (1, f"{args.concurrency} clients")):
            child = statistics.mean(r[i]["tok_s"] for r in runs["child"])
            inline = statistics.mean(r[i]["tok_s"] for r in runs["inline"])
            print(f"{label}: engine in a child process {child:.1f} tok/s vs in the server process {inline:.1f} tok/s "
                  f"= {child / inline:.3f}x (mean of {args.pairs} alternated runs each; target >= 0.95x)")
    for r in (single, many):
        print(f"{r['clients']:>2} client(s): {r['tokens']} tokens in {r['seconds']:.1f} s = {r['tok_s']:.1f} tok/s; "
              f"TTFT p50 {r['ttft_p50'] * 1000:.0f} ms, p99 {r['ttft_p99'] * 1000:.0f} ms; errors {len(r['errors'])}")
        for e in r["errors"][:3]:
            print("   ", e)
    ratio = many["tok_s"] / single["tok_s"]
    ceiling = llama_cpp_ceiling(home, args.model, args.concurrency, args.tokens) if args.engine in ("auto", "llama.cpp") else None
    if ceiling:
        raw = ceiling[args.concurrency] / ceiling[1]
        print(f"llama.cpp alone on this machine: {ceiling[1]:.1f} tok/s for 1 sequence, {ceiling[args.concurrency]:.1f} for "
              f"{args.concurrency} in one batch = {raw:.2f}x (the ceiling for batching on llama.cpp here); "
              f"loom serve reaches {ratio / raw:.0%} of it")
    ok = ratio >= 4.0 and not single["errors"] and not many["errors"]
    print(f"ratio {ratio:.2f}x aggregate tokens/s at {args.concurrency} clients vs 1 (target >= 4.0x, zero errors): "
          f"{'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
