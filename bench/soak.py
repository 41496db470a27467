"""Soak: one `loom serve` under mixed traffic for a bounded time, on loopback only. Clients loop over
chat streaming (a fifth of them hang up after a few chunks), embeddings, knowledge-base search,
classification and support answers (`support:shop`).

Reports requests, errors by status, p50/p99 latency per route in the first and the last minute, and
the server's RSS at start, after warm-up (the first minute) and at the end.
Goals: 0 unexpected errors, RSS growth under 10% after warm-up, last-minute p99 within 1.5x of the
first minute's for every route. The reference for both ratios is the same run's first minute.
    python bench/soak.py [--minutes 10] [--clients 8] [--model smollm2] [--in-process-engines]
Exit status 1 when any request failed unexpectedly (CI runs --minutes 2 and checks that)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from loom.serve.process import ServerProcess

POLICY = """# Shipping

Orders leave our warehouse within one working day. Standard delivery takes 3 to 5 days; express
delivery arrives the next working day when ordered before 2 pm.

# Returns

Unused items can be returned within 30 days. Refunds reach your card within 5 working days after the
parcel arrives back with us.

# 退货

收到商品 30 天内可以退货，商品需保持未使用状态。退款会在 5 个工作日内退回原支付账户。
"""
FAQ = """question,answer
How long does delivery take?,Standard delivery takes 3 to 5 days.
Can I change my address?,Yes: open the order page and choose Change address before the parcel ships.
退款需要多久？,退款会在 5 个工作日内退回原支付账户。
"""
QUESTIONS = ["How long do refunds take?", "When does express delivery arrive?", "退款需要多久？", "Can I return a used item?"]
TEXTS = ["the room was clean and the staff were kind", "terrible service, never again", "房间很干净，服务周到",
         "质量太差了，非常失望", "great value for the price", "the screen broke after a week"]
ERRORS: collections.Counter = collections.Counter()  # error event body -> times seen
MIX = [("chat_stream", 3), ("embeddings", 2), ("kb_search", 2), ("classify", 2), ("support", 1)]


def _setup(home: Path) -> None:
    """A tf-idf classifier and a knowledge base, through the real CLI."""
    import subprocess

    env = dict(os.environ, LOOM_HOME=str(home))
    rows = ["text,label"] + [f'"{t} {i}",{"pos" if j % 2 == 0 else "neg"}' for i in range(30) for j, t in enumerate(TEXTS)]
    (home / "reviews.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (home / "docs").mkdir(exist_ok=True)
    (home / "docs" / "policy.md").write_text(POLICY, encoding="utf-8")
    (home / "docs" / "faq.csv").write_text(FAQ, encoding="utf-8")
    for args in (["finetune", "classify", "--data", str(home / "reviews.csv"), "--base", "tfidf", "--name", "reviews"],
                 ["kb", "create", "shop", "--encoder", "e5"], ["kb", "add", "shop", str(home / "docs")]):
        subprocess.run([sys.executable, "-m", "loom", *args], env=env, check=True, capture_output=True)


async def _one(client: httpx.AsyncClient, route: str, model: str, rng: random.Random) -> str:
    """Runs one request; returns 'ok', 'hung_up' (an intended disconnect) or raises / returns an error tag."""
    if route == "chat_stream":
        body = {"model": model, "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}], "max_tokens": 32,
                "stream": True, "temperature": 0.8}
        hang_up = rng.random() < 0.2
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                return f"status {r.status_code}"
            seen = 0
            async for line in r.aiter_lines():
                seen += line.startswith("data:")
                if hang_up and seen >= 3:
                    return "hung_up"  # leaving the block closes the connection mid-stream
                if line.startswith('data: {"error"'):
                    ERRORS[line[6:][:300]] += 1  # printed at the end: a count alone does not say what failed
                    return "stream error event"
        return "ok"
    if route == "embeddings":
        r = await client.post("/v1/embeddings", json={"model": "minilm", "input": rng.sample(TEXTS, 3)})
    elif route == "kb_search":
        r = await client.post("/v1/kb/shop/search", json={"query": rng.choice(QUESTIONS), "k": 5})
    elif route == "classify":
        r = await client.post("/v1/classify", json={"model": "reviews", "input": rng.sample(TEXTS, 2)})
    else:
        r = await client.post("/v1/chat/completions", json={"model": "support:shop",
                                                             "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}]})
    return "ok" if r.status_code == 200 else f"status {r.status_code}"


async def _client(url: str, model: str, seed: int, until: float, log: list) -> None:
    rng = random.Random(seed)
    routes, weights = zip(*MIX)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        while time.monotonic() < until:
            route = rng.choices(routes, weights)[0]
            start = time.monotonic()
            try:
                outcome = await _one(client, route, model, rng)
            except Exception as e:  # noqa: BLE001  counted: the figure is the error count
                outcome = f"{type(e).__name__}"
            log.append((start, route, outcome, time.monotonic() - start))


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _window(log: list, lo: float, hi: float) -> dict[str, list[float]]:
    by_route = collections.defaultdict(list)
    for start, route, outcome, seconds in log:
        if lo <= start < hi and outcome == "ok":
            by_route[route].append(seconds)
    return by_route


async def _run(url: str, model: str, clients: int, seconds: float, rss, log: list) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:  # one of each first: lazy loads are not soak
        for route, _ in MIX:
            await _one(client, route, model, random.Random(0))
    t0 = time.monotonic()
    marks = {"start": rss()}
    tasks = [asyncio.create_task(_client(url, model, i, t0 + seconds, log)) for i in range(clients)]
    await asyncio.sleep(min(60.0, seconds / 2))
    marks["warm"] = rss()
    await asyncio.gather(*tasks)
    marks["end"] = rss()
    return marks | {"t0": t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--model", default="smollm2", help="chat model for the streaming clients")
    ap.add_argument("--in-process-engines", action="store_true",
                    help="llama.cpp inside the server process, as before engines ran in child processes (for comparison)")
    args = ap.parse_args()
    home = Path(os.environ.get("LOOM_HOME") or tempfile.mkdtemp(prefix="loom-soak-"))
    home.mkdir(parents=True, exist_ok=True)
    _setup(home)
    log: list = []
    with ServerProcess(home, "--host", "127.0.0.1", "--preload", args.model, "--preload", "minilm", "--preload", "reviews",
                       "--max-batch", str(args.clients), *(["--in-process-engines"] if args.in_process_engines else []),
                       start_timeout=300) as server:
        proc = psutil.Process(server.proc.pid)
        seconds = args.minutes * 60
        marks = asyncio.run(_run(server.url, args.model, args.clients, seconds, lambda: proc.memory_info().rss, log))
        alive = server.proc.poll() is None
        server_log = server.output()
    t0, window = marks["t0"], min(60.0, seconds / 2)
    first, last = _window(log, t0, t0 + window), _window(log, t0 + seconds - window, t0 + seconds + 1)
    outcomes = collections.Counter(o for _, _, o, _ in log)
    unexpected = sum(n for o, n in outcomes.items() if o not in ("ok", "hung_up"))
    print(f"soak: {args.minutes:g} min, {args.clients} clients, chat model {args.model}: {len(log)} requests "
          f"({outcomes['hung_up']} intended disconnects)")
    print("outcomes: " + ", ".join(f"{o} {n}" for o, n in outcomes.most_common()))
    for text, n in ERRORS.most_common(5):
        print(f"  error event x{n}: {text}")
    worst = 0.0
    for route, _ in MIX:
        a, b = first.get(route, []), last.get(route, [])
        ratio = _pct(b, 0.99) / _pct(a, 0.99) if a and b else float("nan")
        worst = max(worst, ratio) if ratio == ratio else worst
        print(f"  {route:12} first minute n={len(a):4} p50 {_pct(a, .5) * 1000:7.0f} ms p99 {_pct(a, .99) * 1000:7.0f} ms | "
              f"last minute n={len(b):4} p50 {_pct(b, .5) * 1000:7.0f} ms p99 {_pct(b, .99) * 1000:7.0f} ms | p99 ratio {ratio:.2f}")
    mb = {k: marks[k] / 2**20 for k in ("start", "warm", "end")}
    growth = marks["end"] / marks["warm"] - 1
    print(f"server RSS: start {mb['start']:.0f} MB, after warm-up {mb['warm']:.0f} MB, end {mb['end']:.0f} MB "
          f"({growth * 100:+.1f}% after warm-up); server alive at the end: {alive}")
    if unexpected:  # the server's side of the failures: its log keeps the tracebacks
        print("server log, last lines:\n" + "\n".join(server_log.splitlines()[-60:]))
    ok = unexpected == 0 and growth < 0.10 and worst <= 1.5 and alive
    print(f"ratio {worst:.2f}x last-minute vs first-minute p99 (worst route; target <= 1.5), RSS growth {growth * 100:+.1f}% "
          f"(target < 10%), unexpected errors {unexpected} (target 0): {'PASS' if ok else 'FAIL'}")
    sys.exit(1 if unexpected or not alive else 0)


if __name__ == "__main__":
    main()
