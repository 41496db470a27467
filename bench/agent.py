"""Agents (issue 33): task success of an agent over Loom's tools against a single-shot baseline, the loop's
own overhead per step, and the round trip of Loom's MCP server over streamable HTTP. One run, one machine.

Tasks: bench/data/agent/tasks.jsonl, 44 questions (22 Chinese, 22 English) written for this benchmark
about one shop, Lumio: 12 answered by its knowledge base (bench/data/support/shop/kb), 8 by its order
system (an HTTP API served by this script: bench/data/agent/orders.json behind GET /orders/{id}, declared
as the agent's HTTP tool `order_status` with a bearer token from the environment), 6 by a knowledge
graph (bench/data/agent/graph.csv imported with `loom kg import`), 6 by a recommender (trained on
bench/data/agent/clicks.csv; the expected items are its own top 3 for that user) and 12 that need two
or three of these. A task succeeds when the final answer contains one of the accepted phrases of every
group in `expect` (case-folded; spaces, hyphens and underscores ignored), and for recommendation tasks one of the user's top 3.

Systems, same chat model, same tasks, same run, greedy:
  agent     `agent:` loop over kb_search, order_status, kg_neighbors, kg_path, recommend_for_user;
  baseline  retrieve from the knowledge base (kb_search, k=3), then answer from the passages in one call.
Target: the agent wins on multi-tool tasks and loses no more than 5 points on KB-only ones.

Overheads (targets: loop <= 20 ms p95 per step, MCP <= 30 ms p95):
  loop      run() with a scripted model (a calculator call, then an answer, returned instantly) and the
            task set's tools declared: wall time minus the tool's own time, per model turn, over 200
            questions (declaring the tools, choosing which to offer, messages, dispatch);
  mcp       `loom mcp serve --http`, the `mcp` SDK's client, 200 calls of the calculator tool on loopback.

    python bench/agent.py [--model qwen2.5-1.5b] [--limit N] [--json FILE] [--overheads-only]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data" / "agent"
INSTRUCTIONS = (
    "You are the customer service assistant of Lumio, a shop selling the Lumio 智能音箱 S2 smart speaker and the Lumio "
    "Robot Vacuum R3. Tools: kb_search searches the shop's knowledge base (returns, refunds, shipping, payment, warranty, "
    "product manuals); order_status looks up one order by the id the customer gives; kg_neighbors looks up facts about the "
    "company and its products (founder, headquarters, where products are made); recommend_for_user suggests items for a "
    "user id. Look up every fact you need with the tools; never guess an order id or a fact. Then answer briefly, in the "
    "language of the customer's question, with the facts the tools returned.")
TOKEN = "bench-token"
TOOLS = ["kb_search", "order_status", "kg_neighbors", "kg_path", "recommend_for_user"]


def order_service() -> tuple[ThreadingHTTPServer, str]:
    orders = json.loads((DATA / "orders.json").read_text(encoding="utf-8"))

    class Orders(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            order = orders.get(self.path.rsplit("/", 1)[-1].upper())
            ok = self.headers.get("Authorization") == f"Bearer {TOKEN}" and order is not None
            body = json.dumps(order if ok else {"error": "no such order"}, ensure_ascii=False).encode()
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Orders)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def build_home(url: str) -> None:
    """The shop's KB, graph, recommender and order API in the current LOOM_HOME."""
    from loom.apps.agent import connect
    from loom.apps.support.store import KnowledgeBase
    from loom.cli.main import main as cli
    from loom.config import HttpTool

    kb = KnowledgeBase.create("shop")
    kb.add_paths([str(p) for p in sorted((HERE / "data" / "support" / "shop" / "kb").iterdir())], progress=False)
    for argv in (["kg", "import", "lumio", str(DATA / "graph.csv")],
                 ["recommend", "train", "--data", str(DATA / "clicks.csv"), "--name", "shop"]):
        sys.argv = ["loom", *argv]
        try:
            cli()
        except SystemExit as e:
            assert not e.code, argv
    schema = {"type": "object", "properties": {"order_id": {"type": "string", "description": "e.g. A1001"}}, "required": ["order_id"]}
    connect.save(connect.AgentTools(http={"order_status": HttpTool(
        description="An order's status, product and carrier", url=url + "/orders/{order_id}", parameters=schema,
        headers={"Authorization": "Bearer ${BENCH_ORDER_TOKEN}"})}))
    os.environ["BENCH_ORDER_TOKEN"] = TOKEN


def _plain(text: str) -> str:
    """Case-folded, without spaces, hyphens and underscores: "speaker stand" names the item speaker-stand."""
    return re.sub(r"[\s_-]+", "", text.casefold())


def passed(task: dict, answer: str, top: list[str]) -> bool:
    said = _plain(answer)
    groups = task["expect"] + ([top] if top else [])
    return all(any(_plain(p) in said for p in group) for group in groups)


def baseline(task: dict, backend) -> str:
    from loom.apps.agent.tools import kb_search
    from loom.backends.base import Request, Sampling, collect

    hits = kb_search("shop", task["question"], 3)["hits"]
    passages = "\n\n".join(f"[{i + 1}] {h['text']}" for i, h in enumerate(hits))
    prompt = f"Passages from the shop's knowledge base:\n{passages}\n\nQuestion: {task['question']}\nAnswer briefly from the passages."
    messages = [{"role": "system", "content": INSTRUCTIONS.split(" Use the tools")[0]}, {"role": "user", "content": prompt}]
    return collect(backend.stream(Request(Sampling(max_tokens=256, temperature=0), messages=messages))).text


def success(tasks: list[dict], backend, cfg) -> dict:
    from loom.apps.agent import agent
    from loom.apps.recommend import service

    rows = []
    for task in tasks:
        top = [r["item"] for r in service.get("shop").for_user(task["recommend_for"], k=3)["results"]] if task.get("recommend_for") else []
        started = time.perf_counter()
        answer = [e for e in agent.run(cfg, [{"role": "user", "content": task["question"]}], backend) if isinstance(e, agent.Answer)][0]
        agent_s = time.perf_counter() - started
        started = time.perf_counter()
        single = baseline(task, backend)
        rows.append({"id": task["id"], "kind": task["kind"], "lang": task["lang"], "agent": passed(task, answer.text, top),
                     "baseline": passed(task, single, top), "agent_seconds": round(agent_s, 1),
                     "baseline_seconds": round(time.perf_counter() - started, 1), "steps": [s.tool for s in answer.steps],
                     "stopped": answer.stopped, "answer": answer.text[:300], "baseline_answer": single[:300]})
        print(f"{task['id']:12} agent {'ok ' if rows[-1]['agent'] else 'MISS'} {rows[-1]['steps']} "
              f"baseline {'ok' if rows[-1]['baseline'] else 'MISS'}", flush=True)
    return {"rows": rows}


class Scripted:
    """A chat model that answers instantly: a calculator call on its first turn, then an answer."""

    name = "scripted"

    def stream(self, request):
        from loom.backends.base import Chunk

        if not any(m["role"] == "tool" for m in request.messages):
            yield Chunk("", tool_calls=[{"index": 0, "id": "call_1", "name": "calculator", "arguments": '{"expression": "6 * 7"}'}])
            yield Chunk("", "tool_calls", 10, 5)
        else:
            yield Chunk("It is 42.")
            yield Chunk("", "stop", 10, 3)


def loop_overhead(cfg, runs: int = 200) -> dict:
    from loom.apps.agent import agent

    per_turn = []
    for i in range(runs):
        started = time.perf_counter()
        events = list(agent.run(cfg, [{"role": "user", "content": f"What is 6 * 7? ({i})"}], Scripted()))
        tool_s = sum(e.seconds for e in events if isinstance(e, agent.Step))
        per_turn.append((time.perf_counter() - started - tool_s) * 1000 / 2)  # two model turns
    per_turn.sort()
    return {"loop_ms_p50": round(statistics.median(per_turn), 2), "loop_ms_p95": round(per_turn[int(0.95 * len(per_turn))], 2)}


def mcp_round_trip(calls: int = 200) -> dict:
    import asyncio

    import httpx
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from loom.serve.process import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "loom", "mcp", "serve", "--http", "--port", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        for _ in range(200):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)

        async def timed():
            out = []
            async with httpx2.AsyncClient(timeout=30) as http, Client(streamable_http_client(url, http_client=http)) as client:
                await client.call_tool("calculator", {"expression": "1 + 1"})  # warm-up
                for i in range(calls):
                    started = time.perf_counter()
                    await client.call_tool("calculator", {"expression": f"{i} * 7"})
                    out.append((time.perf_counter() - started) * 1000)
            return sorted(out)
        times = asyncio.run(timed())
    finally:
        server.terminate()
        server.wait(10)
    return {"mcp_ms_p50": round(statistics.median(times), 2), "mcp_ms_p95": round(times[int(0.95 * len(times))], 2)}


def shares(rows: list[dict], system: str) -> dict:
    out = {}
    for label, keep in (("all", lambda r: True), ("kb", lambda r: r["kind"] == "kb"), ("multi", lambda r: r["kind"] == "multi"),
                        ("http", lambda r: r["kind"] == "http"), ("graph", lambda r: r["kind"] == "graph"),
                        ("recommend", lambda r: r["kind"] == "recommend"), ("zh", lambda r: r["lang"] == "zh"),
                        ("en", lambda r: r["lang"] == "en")):
        part = [r for r in rows if keep(r)]
        out[label] = f"{sum(r[system] for r in part)}/{len(part)}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="chat model (default: the default chat model of your LOOM_HOME)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N tasks")
    ap.add_argument("--json", help="write every task's answers and the figures here")
    ap.add_argument("--overheads-only", action="store_true", help="only the loop and MCP overheads (no chat model runs)")
    args = ap.parse_args()

    from loom import catalog, registry
    from loom.config import AgentConfig

    model = args.model or catalog.default_chat_model() or "qwen2.5-1.5b"
    # opened from the user's LOOM_HOME, before it moves
    backend = None if args.overheads_only else registry.open_backend(model, max_batch=1)
    tasks = [json.loads(line) for line in (DATA / "tasks.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    tasks = tasks[: args.limit] if args.limit else tasks
    api, url = order_service()
    figures = {"model": model}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LOOM_HOME"] = tmp
        build_home(url)
        figures |= loop_overhead(AgentConfig(tools=["calculator", *TOOLS], max_steps=3))
        figures |= mcp_round_trip()
        print(f"overheads: {figures}", flush=True)
        if args.overheads_only:
            return
        cfg = AgentConfig(instructions=INSTRUCTIONS, tools=TOOLS,
                          first_step="required", max_steps=4, max_tokens=384)
        rows = success(tasks, backend, cfg)["rows"]
    api.shutdown()
    backend.close()
    figures["agent"], figures["baseline"] = shares(rows, "agent"), shares(rows, "baseline")
    print(f"\n{len(rows)} tasks, model {model}")
    print("| tasks | agent | single-shot baseline |\n|---|---|---|")
    for key in figures["agent"]:
        print(f"| {key} | {figures['agent'][key]} | {figures['baseline'][key]} |")
    print(f"agent seconds per task: p50 {statistics.median(r['agent_seconds'] for r in rows):.1f}; "
          f"baseline {statistics.median(r['baseline_seconds'] for r in rows):.1f}")
    print(f"loop overhead per step: p50 {figures['loop_ms_p50']} ms, p95 {figures['loop_ms_p95']} ms (target <= 20); "
          f"MCP round trip: p50 {figures['mcp_ms_p50']} ms, p95 {figures['mcp_ms_p95']} ms (target <= 30)")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "rows": rows}, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
