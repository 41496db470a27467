"""The cost of logprobs (issue 30): streamed decode tok/s through `loom serve` with `logprobs: true,
top_logprobs: 5` against the same request without, alternated in one server, and the server's RSS
before and after. Targets: >= 0.9x the tok/s; RSS +50 MB at most.

    python bench/logprobs.py [--model qwen2.5-0.5b] [--tokens 128] [--trials 3]
"""

from __future__ import annotations

import argparse
import statistics

import openai
import psutil
from _serving import served, streamed


MESSAGES = [{"role": "user", "content": "Write a short story about a fox who learns to sail."}]


def rate(client: openai.OpenAI, model: str, tokens: int, logprobs: bool) -> float:
    extra = {"logprobs": True, "top_logprobs": 5} if logprobs else {}
    return streamed(client, model, MESSAGES, tokens, **extra)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    with served(args.model) as (server, client):
        rate(client, args.model, 8, False)
        rss_before = psutil.Process(server.proc.pid).memory_info().rss
        plain, scored = [], []
        for _ in range(args.trials):
            plain.append(rate(client, args.model, args.tokens, False))
            scored.append(rate(client, args.model, args.tokens, True))
        rss_after = psutil.Process(server.proc.pid).memory_info().rss
    p, s = statistics.median(plain), statistics.median(scored)
    growth = (rss_after - rss_before) / 2**20
    print(f"{args.model}: {p:.1f} tok/s without logprobs, {s:.1f} with top_logprobs=5; server RSS {rss_before / 2**20:.0f} -> "
          f"{rss_after / 2**20:.0f} MB (+{growth:.0f} MB)")
    ok = s / p >= 0.9 and growth <= 50
    print(f"ratio {s / p:.3f}x tok/s with logprobs vs without (target >= 0.9x; RSS +50 MB at most): {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
