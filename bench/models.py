"""Which chat model should be the default? The pullable chat models measured in one run, on this machine,
on what a user sees first and on what each app does with them (issue 35).

Per model, first through a real `loom serve` with only that model preloaded (engine auto: llama.cpp in its
supervised child process when installed):
  speed     decode tok/s of one greedy stream (128 tokens, median of 3) and of 16 concurrent streams (64
            tokens each; total completion tokens over wall time), first-token latency (median of 3,
            short prompt), RSS of the server and its engine processes with the model loaded, load time;
  tools     bench/function_calling.py's clean held-out split (test2, 40 Chinese + English cases):
            right call where one is needed, no call where none is.
Then in this process, the same engine, greedy:
  facts     bench/data/zh_facts.jsonl: 30 simple Chinese questions written for this benchmark (capitals,
            authors, festivals, nature); right when the answer contains an accepted phrase;
  translate chrF on bench/data/translation.jsonl, both directions (loom.apps.translate);
  summary   ROUGE-L of one-sentence summaries of BBC articles against their headlines (loom.apps.summarize);
  kg        the KG model tier's triple F1 on bench/data/kg_sentences.jsonl (the first N of each language);
  support   answers written by the model on the three support domains (bench/support_answers.py's KBs,
            every k-th question): accuracy and out-of-scope hand-off, as `loom eval support` scores them.

    python bench/models.py [--models qwen2.5-0.5b,qwen2.5-1.5b] [--kg 15] [--summaries 12] [--support-every 3]
                           [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _serving import home_with, streamed

HERE = Path(__file__).parent
SPEED_PROMPT = [{"role": "user", "content": "用三句话介绍一下杭州。"}]


def rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def served_figures(name: str) -> dict:
    """Speed, memory and tool calling through `loom serve`."""
    import openai

    import function_calling as fc
    from loom.serve.process import ServerProcess

    start = time.perf_counter()
    with ServerProcess(home_with(name), "--preload", name, start_timeout=600) as server:
        load_s = time.perf_counter() - start
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=900)
        streamed(client, name, SPEED_PROMPT, 8)  # warm-up
        single = [streamed(client, name, SPEED_PROMPT, 128) for _ in range(3)]
        with ThreadPoolExecutor(16) as pool:
            wall = time.perf_counter()
            many = list(pool.map(lambda _: streamed(client, name, SPEED_PROMPT, 64), range(16)))
            wall = time.perf_counter() - wall
        rss = rss_mb(server.proc.pid)
        definitions, cases = fc.load_cases("test2")
        tools = fc.summary(name, fc.run_cases(client, name, cases, definitions))
    return {"load_s": round(load_s, 1), "tok_s_1": round(statistics.median(r[0] for r in single), 2),
            "first_token_s": round(statistics.median(r[1] for r in single), 3),
            "tok_s_16": round(sum(r[2] for r in many) / wall, 2), "rss_mb": round(rss),
            "tools_right_call": round(tools["right_call"], 3), "tools_no_call": round(tools["no_call"], 3)}


def ask(backend, question: str, tokens: int = 64) -> str:
    from loom.backends.base import Request, Sampling

    request = Request(Sampling(max_tokens=tokens, temperature=0), messages=[{"role": "user", "content": question}])
    return "".join(c.text for c in backend.stream(request))


def facts(backend) -> dict:
    rows = [json.loads(line) for line in (HERE / "data" / "zh_facts.jsonl").read_text(encoding="utf-8").splitlines()]
    wrong = []
    for row in rows:
        answer = ask(backend, row["question"]).replace(" ", "").replace(",", "")
        if not any(a in answer for a in row["accept"]):
            wrong.append({"question": row["question"], "answer": answer[:80]})
    return {"facts": f"{len(rows) - len(wrong)}/{len(rows)}", "facts_share": round(1 - len(wrong) / len(rows), 3),
            "facts_wrong": wrong}


def translation(backend) -> dict:
    from loom.apps.translate import translate
    from loom.eval.text import translation_scores

    rows = [json.loads(line) for line in (HERE / "data" / "translation.jsonl").read_text(encoding="utf-8").splitlines()]
    out = {}
    for src, dst in (("en", "zh"), ("zh", "en")):
        texts = [translate(r[src], dst, backend).text for r in rows]
        out[f"chrf_{src}_{dst}"] = round(translation_scores(texts, [r[dst] for r in rows], dst)["chrf"], 1)
    return out


def summaries(backend, count: int) -> dict:
    from kb_retrieval import bbc_articles
    from loom.apps.summarize import abstractive
    from loom.eval.text import rouge

    pairs = [(body, headline) for headline, body in bbc_articles()[:count]]
    outputs = ["".join(abstractive(body, backend, 1, max_tokens=60)) for body, _ in pairs]
    return {"summary_rougeL": round(rouge(outputs, [h for _, h in pairs])["rougeL"], 4)}


def kg(name: str, per_language: int) -> dict:
    import kg_extraction as kge

    rows = [json.loads(line) for line in kge.DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    subset = [r for lang in ("zh", "en") for r in [x for x in rows if x["lang"] == lang][:per_language]]
    report = kge.evaluate(subset, kge.model_tier(name))
    return {f"kg_triple_f1_{lang}": round(report[lang]["triples"]["f1"], 3) for lang in ("zh", "en")}


def support(backend, every: int) -> dict:
    """Answers written by `backend` on the three benchmark KBs, built in a throwaway LOOM_HOME."""
    import support_answers as sa
    from loom.apps.support.eval_answers import evaluate

    saved = os.environ.get("LOOM_HOME")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LOOM_HOME"] = tmp
        try:
            for domain in sa.DOMAINS:
                kb = sa.build(domain, sorted((sa.DATA / domain / "kb").iterdir()))
                qa, oos = sa.questions(domain)
                report = evaluate(kb, qa[::every], oos[::every], backend, progress=False)["overall"]
                out[f"support_{domain}"] = f"{report['accuracy']:.3f} / {report['oos_handoff_recall']:.3f}"
                out[f"support_{domain}_p50_s"] = report["seconds_per_answer"]["p50"]
        finally:
            if saved is None:
                os.environ.pop("LOOM_HOME", None)
            else:
                os.environ["LOOM_HOME"] = saved
    return out


def measure(name: str, args) -> dict:
    from loom import registry

    figures = {"model": name}
    started = time.perf_counter()
    figures |= served_figures(name)
    print(f"{name}: served figures in {time.perf_counter() - started:.0f} s: {figures}", flush=True)
    backend = registry.open_backend(name, max_batch=1)
    try:
        for label, step in (("facts", lambda: facts(backend)), ("translation", lambda: translation(backend)),
                            ("summaries", lambda: summaries(backend, args.summaries)),
                            ("support", lambda: support(backend, args.support_every))):
            started = time.perf_counter()
            figures |= step()
            print(f"{name}: {label} in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        backend.close()
    started = time.perf_counter()
    figures |= kg(name, args.kg)
    print(f"{name}: kg in {time.perf_counter() - started:.0f} s", flush=True)
    return figures


ROWS = [("decode tok/s, 1 stream", "tok_s_1"), ("decode tok/s, 16 streams (total)", "tok_s_16"),
        ("first-token latency, s", "first_token_s"), ("RSS with the model loaded, MB", "rss_mb"), ("load time, s", "load_s"),
        ("Chinese facts (30)", "facts"), ("translation chrF en->zh", "chrf_en_zh"), ("translation chrF zh->en", "chrf_zh_en"),
        ("summary ROUGE-L vs headline", "summary_rougeL"), ("KG triple F1 zh", "kg_triple_f1_zh"),
        ("KG triple F1 en", "kg_triple_f1_en"), ("tools: right call (test2)", "tools_right_call"),
        ("tools: no call where none needed", "tools_no_call"), ("support shop: accuracy / OOS hand-off", "support_shop"),
        ("support ebike", "support_ebike"), ("support course", "support_course")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="qwen2.5-0.5b,qwen2.5-1.5b")
    ap.add_argument("--kg", type=int, default=15, help="KG sentences per language")
    ap.add_argument("--summaries", type=int, default=12)
    ap.add_argument("--support-every", type=int, default=3, help="every k-th support question")
    ap.add_argument("--json", help="write every figure (and the wrong facts) here")
    args = ap.parse_args()
    names = [m for m in args.models.split(",") if m]
    results = [measure(name, args) for name in names]
    print("\n| measure | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for label, key in ROWS:
        print(f"| {label} | " + " | ".join(str(r.get(key, "-")) for r in results) + " |")
    if len(results) == 2 and results[0]["tok_s_1"]:
        print(f"\nspeed ratio {names[1]}/{names[0]}, one stream: {results[1]['tok_s_1'] / results[0]['tok_s_1']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
