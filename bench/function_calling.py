"""Function calling on the default chat model (issue 30): Loom against llama-cpp-python's own OpenAI
server (`chatml-function-calling`), same GGUF, same cases, same run.

Cases: bench/data/function_calling.jsonl (Chinese and English; one needed tool, a choice among
several, and requests that need none; four domains):
  dev    weather_travel: where Loom's tool prompts and the grounding rule (model/grounding.py) were chosen;
  test   office, shopping_finance: held out at first, then seen while revising the rule for codes
         (get_stock_price("AAPL") for an unrelated question), so no longer clean;
  test2  home_health: written after every rule was fixed, the clean held-out domain.
tool_choice auto, greedy. Scored per case:
  needs a tool: the first call names the expected tool and carries every expected key argument
                (strings compared trimmed and case-folded, numbers as numbers);
  needs none:   no call;
  valid:        every returned call's arguments parse and validate against the tool's schema
                (jsonschema, independent of the grammar engine that produced them).
Plus 10 protocol checks each server gets (tools auto/required/named, streamed deltas, tool results,
json_schema, parse(), logprobs, two bad inputs).

Targets: right call on >= 2/3 of the cases that need one, no call on >= 90% of those that need none,
100% valid arguments.

    pip install -e .[bench]        # jsonschema and the peer server's web stack
    python bench/function_calling.py [--model qwen2.5-0.5b] [--split all|dev|test|test2] [--limit N] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
from _serving import served


CASES = Path(__file__).parent / "data" / "function_calling.jsonl"


def load_cases(split: str) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    definitions, cases = lines[0]["tool_definitions"], lines[1:]
    return definitions, [c for c in cases if split == "all" or c["split"] == split]


def same(got, want) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        try:
            return abs(float(got) - float(want)) < 1e-6
        except (TypeError, ValueError):
            return False
    return str(got).strip().casefold() == str(want).strip().casefold()


def score(case: dict, calls: list, definitions: dict) -> dict:
    import jsonschema

    valid = True
    for call in calls:
        try:
            args = json.loads(call.function.arguments)
            jsonschema.validate(args, definitions[call.function.name]["parameters"])
        except (json.JSONDecodeError, KeyError, jsonschema.ValidationError, TypeError):
            valid = False
    want = case["expect"]
    if want is None:
        return {"right": not calls, "valid": valid}
    if not calls or calls[0].function.name != want["name"]:
        return {"right": False, "valid": valid}
    try:
        args = json.loads(calls[0].function.arguments)
    except json.JSONDecodeError:
        return {"right": False, "valid": False}
    right = isinstance(args, dict) and all(k in args and same(args[k], v) for k, v in want["arguments"].items())
    return {"right": right, "valid": valid}


def run_cases(client, model: str, cases: list[dict], definitions: dict) -> list[dict]:
    out = []
    for case in cases:
        tools = [{"type": "function", "function": definitions[name]} for name in case["tools"]]
        start = time.perf_counter()
        try:
            reply = client.chat.completions.create(model=model, messages=case["messages"], tools=tools, tool_choice="auto",
                                                   temperature=0, max_tokens=160)
            calls = reply.choices[0].message.tool_calls or []
            result = score(case, calls, definitions) | {"error": None}
        except openai.APIError as e:
            calls, result = [], {"right": False, "valid": True, "error": f"{type(e).__name__}: {str(e)[:80]}"}
        out.append(result | {"case": case, "calls": len(calls), "seconds": time.perf_counter() - start})
    return out


def protocol_checks(client, model: str) -> dict[str, bool]:
    """Ten checks of the OpenAI tools protocol a client library relies on; each True or False."""
    from pydantic import BaseModel

    weather = {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
                                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                               "required": ["city"]}}}
    ask = [{"role": "user", "content": "What is the weather in Paris right now?"}]
    base = dict(model=model, messages=ask, temperature=0, max_tokens=120)

    def call_of(reply):
        calls = reply.choices[0].message.tool_calls or []
        return calls[0] if calls and reply.choices[0].finish_reason == "tool_calls" else None

    def auto():
        return call_of(client.chat.completions.create(**base, tools=[weather])) is not None

    def required():
        return call_of(client.chat.completions.create(**base, tools=[weather], tool_choice="required")) is not None

    def named():
        call = call_of(client.chat.completions.create(**base, tools=[weather], tool_choice={"type": "function", "function": {"name": "get_weather"}}))
        return call is not None and call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)

    def streamed():
        deltas = [d for c in client.chat.completions.create(**base, tools=[weather], tool_choice="required", stream=True)
                  if c.choices for d in c.choices[0].delta.tool_calls or []]
        return bool(deltas) and deltas[0].id is not None and "city" in json.loads("".join(d.function.arguments or "" for d in deltas))

    def tool_result():
        history = ask + [{"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]}, {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'}]
        reply = client.chat.completions.create(model=model, messages=history, tools=[weather], temperature=0, max_tokens=60)
        return bool(reply.choices[0].message.content) and not reply.choices[0].message.tool_calls

    def json_schema():
        schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9}, "tags": {
            "type": "array", "items": {"type": "string"}}}, "required": ["n", "tags"], "additionalProperties": False}
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hello"}], temperature=0, max_tokens=80,
                                               response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema, "strict": True}})
        value = json.loads(reply.choices[0].message.content)
        return set(value) == {"n", "tags"} and 1 <= value["n"] <= 9

    def parse():
        class Ticket(BaseModel):
            title: str
            priority: int

        return client.chat.completions.parse(model=model, messages=[{"role": "user", "content": "File a ticket: printer broken"}],
                                             temperature=0, max_tokens=300, response_format=Ticket).choices[0].message.parsed is not None

    def logprobs():
        reply = client.chat.completions.create(model=model, messages=ask, temperature=0, max_tokens=5, logprobs=True, top_logprobs=3)
        content = reply.choices[0].logprobs and reply.choices[0].logprobs.content
        return bool(content) and len(content[0].top_logprobs) == 3

    def rejects(tool):
        try:
            client.chat.completions.create(**base, tools=[tool])
        except openai.BadRequestError:
            return True
        except openai.APIError:
            return False
        return False

    checks = {"auto": auto, "required": required, "named": named, "streamed": streamed, "tool_result": tool_result,
              "json_schema": json_schema, "parse": parse, "logprobs": logprobs,
              "bad_name_400": lambda: rejects({"type": "function", "function": {"name": "bad name!", "parameters": {"type": "object"}}}),
              "bad_parameters_400": lambda: rejects({"type": "function", "function": {"name": "f", "parameters": {"type": 5}}})}
    out = {}
    for name, check in checks.items():
        try:
            out[name] = bool(check())
        except Exception:  # noqa: BLE001  a 500, a parse failure, a missing field: the check fails
            out[name] = False
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_peer(gguf: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--chat_format", "chatml-function-calling",
                             "--port", str(port), "--n_ctx", "4096", "--n_threads", str(os.cpu_count() or 2)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=10)
    for _ in range(240):
        try:
            client.models.list()
            return proc, url
        except openai.APIError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the peer server did not start: pip install -e .[bench]")


def summary(name: str, results: list[dict]) -> dict:
    need = [r for r in results if r["case"]["expect"] is not None]
    none = [r for r in results if r["case"]["expect"] is None]
    called = [r for r in results if r["calls"]]
    row = {"right_call": sum(r["right"] for r in need) / max(1, len(need)), "no_call": sum(r["right"] for r in none) / max(1, len(none)),
           "valid": sum(r["valid"] for r in called) / max(1, len(called)), "errors": sum(bool(r["error"]) for r in results),
           "need": len(need), "none": len(none), "s_per_case": sum(r["seconds"] for r in results) / max(1, len(results))}
    by = {}
    for key in ("lang", "split"):
        for value in sorted({r["case"][key] for r in results}):
            part = [r for r in results if r["case"][key] == value]
            pn = [r for r in part if r["case"]["expect"] is not None]
            pz = [r for r in part if r["case"]["expect"] is None]
            by[f"{key}={value}"] = (f"right {sum(r['right'] for r in pn)}/{len(pn)}, no-call {sum(r['right'] for r in pz)}/{len(pz)}")
    print(f"{name:>6}: right call {row['right_call']:.3f} ({row['need']} cases), no call {row['no_call']:.3f} ({row['none']}), "
          f"valid arguments {row['valid']:.3f}, errors {row['errors']}, {row['s_per_case']:.2f} s/case")
    for k, v in by.items():
        print(f"        {k}: {v}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--split", default="all", choices=["all", "dev", "test", "test2"])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    definitions, cases = load_cases(args.split)
    cases = cases[: args.limit] if args.limit else cases
    rows, checks = {}, {}
    with served(args.model) as (server, client):
        os.environ["LOOM_HOME"] = str(server.home)
        from loom import catalog

        gguf = catalog.resolve(args.model).path
        rows["loom"] = run_cases(client, args.model, cases, definitions)
        checks["loom"] = protocol_checks(client, args.model)
    if not args.no_peer:
        proc, url = start_peer(gguf)
        try:
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
            rows["peer"] = run_cases(client, args.model, cases, definitions)
            checks["peer"] = protocol_checks(client, args.model)
        finally:
            proc.kill()
    print(f"{len(cases)} cases ({args.split}), model {args.model}, tool_choice auto, greedy")
    figures = {name: summary(name, results) for name, results in rows.items()}
    for name, result in checks.items():
        print(f"{name:>6}: protocol checks {sum(result.values())}/10  " + " ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in result.items()))
    if "peer" in figures:
        loom, peer = figures["loom"], figures["peer"]
        print(f"ratio loom/peer: right call {loom['right_call']:.3f} vs {peer['right_call']:.3f}, "
              f"no call {loom['no_call']:.3f} vs {peer['no_call']:.3f}")


if __name__ == "__main__":
    main()
