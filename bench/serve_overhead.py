"""HTTP overhead: the same chat request through `loom serve` (openai client, loopback) and as a
direct in-process call to the same backend class, alternating, same machine, same run.

Target: HTTP <= 1.10x the in-process time.
    python bench/serve_overhead.py [--model smollm2] [--tokens 32] [--trials 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import openai

from loom import registry
from loom.backends.base import Sampling
from loom.serve.process import ServerProcess

MESSAGES = [{"role": "user", "content": "Name three rivers in Europe and say one fact about each."}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    home = Path(os.environ.get("LOOM_HOME") or tempfile.mkdtemp(prefix="loom-bench-"))
    os.environ["LOOM_HOME"] = str(home)
    backend = registry.open_backend(args.model, engine="transformers")
    sampling = Sampling(max_tokens=args.tokens, temperature=0)
    direct_times, http_times = [], []
    with ServerProcess(home, "--preload", args.model, "--engine", "transformers", start_timeout=300) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
        for trial in range(args.trials + 1):  # trial 0 warms both paths up and is not counted
            t0 = time.perf_counter()
            direct = backend.chat(MESSAGES, sampling)
            t1 = time.perf_counter()
            http = client.chat.completions.create(model=args.model, messages=MESSAGES, max_tokens=args.tokens, temperature=0)
            t2 = time.perf_counter()
            assert http.choices[0].message.content == direct.text, "the two paths must do the same work"
            if trial:
                direct_times.append(t1 - t0)
                http_times.append(t2 - t1)
    backend.close()
    d, h = statistics.median(direct_times), statistics.median(http_times)
    print(f"in-process: median {d * 1000:.0f} ms for {direct.completion_tokens} tokens ({args.trials} trials)")
    print(f"HTTP:       median {h * 1000:.0f} ms (openai client -> loom serve on loopback)")
    ratio = h / d
    print(f"ratio {ratio:.3f}x HTTP vs in-process (target <= 1.10x): {'PASS' if ratio <= 1.10 else 'FAIL'}")


if __name__ == "__main__":
    main()
