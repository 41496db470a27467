"""Single-stream decode through `loom serve` (default engine: llama.cpp on a CPU) vs llama-cpp-python
driving the same GGUF file directly, same run, for smollm2 and qwen2.5-0.5b (pulled if missing, ~470 MB once).

Each measurement runs in a process of its own, alternated: the server (the batched llama.cpp
runner) answers a streamed chat request over HTTP; the reference is llama-cpp-python's
`create_chat_completion` in a fresh interpreter, with as many threads as cores. Both decode greedily
to --tokens tokens; tok/s = completion tokens / wall time of the request (prompt included). The
reference is reset after its warm-up: llama-cpp-python otherwise keeps the warm-up's prompt in its
KV cache and skips prefill on the timed call (~12% of a 128-token request on qwen2.5-0.5b), which the
server, with no prefix cache, does not.

Also reported: cold start (server spawn to ready with the model preloaded), the server's RSS with
the model loaded, and the transformers engine's figure for context.
Targets (issue 18): server >= 0.9x direct; cold start <= 10 s; RSS with qwen2.5-0.5b <= 1.5 GB.
Issue 29: the same server with the engine in its supervised child process (the default) vs
--in-process-engines, >= 0.95x.

    python bench/decode_speed.py [--models smollm2 qwen2.5-0.5b] [--tokens 128] [--trials 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = [{"role": "user", "content": "Write a short story about a fox who learns to sail."}]
_DIRECT = """
import json, os, sys, time
from llama_cpp import Llama
path, tokens = sys.argv[1], int(sys.argv[2])
llm = Llama(model_path=path, n_ctx=4096, n_threads=os.cpu_count(), verbose=False)
messages = json.loads(sys.argv[3])
llm.create_chat_completion(messages, max_tokens=8, temperature=0)  # warm-up
llm.reset()  # or the timed call reuses the warm-up's KV cache for the prompt, which the server processes afresh
start = time.perf_counter()
out = llm.create_chat_completion(messages, max_tokens=tokens, temperature=0)
print(out["usage"]["completion_tokens"] / (time.perf_counter() - start))
"""


def direct_rate(path: str, tokens: int) -> float:
    out = subprocess.run([sys.executable, "-c", _DIRECT, path, str(tokens), json.dumps(PROMPT)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"llama-cpp-python failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def served_rate(url: str, model: str, tokens: int) -> float:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
    start, produced = time.perf_counter(), 0
    for chunk in client.chat.completions.create(model=model, messages=PROMPT, max_tokens=tokens, temperature=0, stream=True,
                                                stream_options={"include_usage": True}):
        if chunk.usage:
            produced = chunk.usage.completion_tokens
    return produced / (time.perf_counter() - start)


def measure(home: Path, model: str, engine: str, tokens: int, trials: int, in_process: bool = False) -> dict:
    import psutil

    from loom import catalog
    from loom.serve.process import ServerProcess

    os.environ["LOOM_HOME"] = str(home)
    from loom.model.load import load_tokenizer

    from loom.backends.llamacpp import weights_file

    path = weights_file(catalog.resolve(model))  # the file the server's llama.cpp runs (smollm2: its f16 copy)
    load_tokenizer(catalog.resolve(model))  # as after `loom models pull`, which prepares it once
    start = time.perf_counter()
    flags = ["--in-process-engines"] if in_process else []
    server = ServerProcess(home, "--preload", model, "--engine", engine, *flags, start_timeout=900)
    cold = time.perf_counter() - start
    try:
        served_rate(server.url, model, 8)  # warm-up
        ours, theirs = [], []
        for _ in range(trials):
            ours.append(served_rate(server.url, model, tokens))
            if engine != "transformers" and not in_process:
                theirs.append(direct_rate(path, tokens))
        rss = psutil.Process(server.proc.pid).memory_info().rss
    finally:
        server.stop()
    return {"model": model, "engine": engine, "cold_start_s": cold, "rss_mb": rss / 2**20,
            "served": statistics.median(ours), "direct": statistics.median(theirs) if theirs else None}


def main() -> None:
    # Every side runs the same llama.cpp build, the portable one (the package's own): the server's engine
    # child, the in-process engine and the llama-cpp-python reference. bench/portable_build.py compares builds.
    os.environ.setdefault("LOOM_LLAMA_BUILDS", tempfile.mkdtemp(prefix="no-extra-builds-"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2", "qwen2.5-0.5b"])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--home", help="LOOM_HOME holding pulled models (default: a temporary one; qwen2.5-0.5b is pulled)")
    args = ap.parse_args()
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit("needs llama-cpp-python==0.3.36 (a core dependency: make install builds it)")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(args.home or tmp)
        for model in args.models:
            if model == "qwen2.5-0.5b":
                subprocess.run([sys.executable, "-m", "loom", "models", "pull", model, "--if-missing"], check=True,
                               env=dict(os.environ, LOOM_HOME=str(home)))
        rows = [measure(home, m, "auto", args.tokens, args.trials) for m in args.models]
        # the same server with llama.cpp in its own process instead of a supervised child (issue 29: >= 0.95x)
        inline = [measure(home, m, "auto", args.tokens, args.trials, in_process=True) for m in args.models]
        context = [measure(home, m, "transformers", min(args.tokens, 64), 1) for m in args.models]
    for r, t in zip(rows, context):
        print(f"{r['model']}: loom serve (default engine) {r['served']:.1f} tok/s, llama-cpp-python direct {r['direct']:.1f} tok/s "
              f"= {r['served'] / r['direct']:.3f}x; cold start {r['cold_start_s']:.1f} s; server RSS {r['rss_mb']:.0f} MB; "
              f"transformers engine {t['served']:.1f} tok/s (cold start {t['cold_start_s']:.1f} s, RSS {t['rss_mb']:.0f} MB)")
    for r, i in zip(rows, inline):
        print(f"{r['model']}: engine in a child process {r['served']:.1f} tok/s vs in the server process {i['served']:.1f} tok/s "
              f"= {r['served'] / i['served']:.3f}x (target >= 0.95x)")
    worst = min(r["served"] / r["direct"] for r in rows)
    print(f"ratio {worst:.3f}x loom serve vs llama.cpp direct, the lower of {len(rows)} models (target >= 0.9x): "
          f"{'PASS' if worst >= 0.9 else 'FAIL'}")


if __name__ == "__main__":
    main()
