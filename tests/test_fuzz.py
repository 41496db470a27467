"""Every route fuzzed from the server's own OpenAPI schema (hypothesis): path-like names (`../`,
absolute paths, NUL, encoded separators), wrong types, huge strings, unknown fields, malformed JSON
and multipart uploads with hostile file names, all sent with an admin key so every route is reachable.
Never a 5xx, always an OpenAI-style error body, and a canary file planted outside LOOM_HOME is never
read into a response nor is anything written beside it."""

from __future__ import annotations

import json
import os
import urllib.parse

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import LiveServer, copy_home

CANARY = "CANARY-91c2 outside LOOM_HOME"
ROUTE_NAMES = ["shop", "nano", "reviews", "demo", "minilm", "support:shop"]  # real things, so routes do real work


VALID = {  # a working body per JSON route: the fuzzer mutates one field of it, so it reaches the route's own code
    "/v1/chat/completions": {"model": "nano", "messages": [{"role": "user", "content": "the river"}], "max_tokens": 2},
    "/v1/completions": {"model": "nano", "prompt": "the river", "max_tokens": 2},
    "/v1/embeddings": {"model": "minilm", "input": "hello"},
    "/v1/classify": {"model": "reviews", "input": "lovely room"},
    "/v1/kb": {"name": "fuzzed", "encoder": "minilm"},
    "/v1/kb/{name}/documents": {"documents": [{"source": "a.md", "text": "Gift cards never expire."}]},
    "/v1/kb/{name}/search": {"query": "returns", "k": 2},
    "/v1/summarize": {"input": "One is first. Two is here. Three is last.", "sentences": 1},
    "/v1/translate": {"input": "hello", "to": "zh", "model": "nano"},
    "/v1/write": {"kind": "poem", "topic": "rain", "model": "nano", "retries": 0},
    "/v1/report": {"data": [{"city": "a", "sales": 1}, {"city": "b", "sales": 3}]},
    "/v1/keys": {"name": "fuzzed"},
}


def _nasty(canary_path: str) -> list[str]:
    return ROUTE_NAMES + [
        "..", "../..", "../../etc/passwd", "/etc/passwd", canary_path, "../" * 8 + canary_path.lstrip("/"),
        "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e", "a\x00b", "....//....//", "C:\\Windows\\win.ini", "~", "~root/.ssh",
        "/", ".", ".hidden", "support:../x", "support:" + canary_path, "名字", "x" * 5000, "file:///etc/passwd",
        "http://127.0.0.1:1/v1", "nano/../nano", "\u202e", " ", "shop;DROP TABLE documents", "'\"<>",
    ]


def _walk_refs(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _value(names, depth: int = 0):
    scalars = st.one_of(st.sampled_from(names), st.text(max_size=60), st.integers(-10**12, 10**12),
                        st.floats(allow_nan=False), st.booleans(), st.none(), st.just("x" * 20_000))
    if depth > 1:
        return scalars
    inner = _value(names, depth + 1)
    return st.one_of(scalars, st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["text", "role", "source", "content"]),
                                                                          inner, max_size=3))


@st.composite
def _requests(draw, ops, spec, names):
    method, template, op = draw(st.sampled_from(ops))
    path = template
    for param in [p for p in op.get("parameters", []) if p["in"] == "path"]:
        raw = draw(st.sampled_from(names) | st.text(min_size=1, max_size=30))
        path = path.replace("{" + param["name"] + "}", urllib.parse.quote(raw, safe=draw(st.sampled_from(["", "/", ":"]))))
    query = {p["name"]: draw(st.sampled_from(names) | st.text(max_size=30))
             for p in op.get("parameters", []) if p["in"] == "query" and draw(st.booleans() | st.just(True))}
    request = {"method": method, "url": path, "params": query}
    content = (op.get("requestBody") or {}).get("content", {})
    if "multipart/form-data" in content:
        files = draw(st.lists(st.tuples(st.sampled_from(names + ["a.pdf", "b.docx", "c.csv", "d.jsonl", "e.md"]),
                                        st.binary(max_size=300)), min_size=0, max_size=3))
        request["files"] = [("files", f) for f in files] or None
        if not files:
            request["content"] = draw(st.binary(max_size=50))
    elif "application/json" in content:
        schema = _walk_refs(content["application/json"]["schema"], spec)
        fields = list((schema.get("properties") or {}).keys())
        shape = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "mutated", "fields", "garbage", "array", "unknown"]))
        if shape == "garbage":
            request["content"] = draw(st.binary(max_size=60))
        elif shape in ("valid", "mutated") and template in VALID:
            body = dict(VALID[template])
            if shape == "mutated":
                body[draw(st.sampled_from(fields + ["extra"]))] = draw(_value(names))
            request["content"] = json.dumps(body).encode()
        else:
            body = {f: draw(_value(names)) for f in fields if draw(st.booleans())}
            if "model" in fields and draw(st.booleans()):
                body["model"] = draw(st.sampled_from(names))
            if shape == "unknown":
                body[draw(st.text(min_size=1, max_size=10))] = draw(_value(names))
            request["content"] = json.dumps([body] if shape == "array" else body).encode()
        request["headers"] = {"Content-Type": "application/json"}
    return request


def _tree(root, skip) -> dict:
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) != str(skip)]
        for name in files:
            st_ = os.stat(os.path.join(folder, name))
            found[os.path.join(folder, name)] = (st_.st_size, st_.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def target(api_home, tmp_path_factory):
    from loom.serve.auth import KeyStore

    root = tmp_path_factory.mktemp("fuzz")
    home = copy_home(api_home, root / "home")
    outside = root / "outside"
    (root / "imports").mkdir()
    outside.mkdir()
    (outside / "canary.md").write_text(f"# Canary\n\n{CANARY}\n", encoding="utf-8")
    os.symlink(outside / "canary.md", root / "imports" / "canary.md")  # a link out of the import folder
    admin = KeyStore(home / "loom.db").create("fuzz-admin-5d1e", admin=True)[1]
    server = LiveServer(home, "--preload", "nano", "--max-tokens", "4", "--kb-import-dir", str(root / "imports"))
    yield server, admin, outside / "canary.md", root
    server.stop()


def test_every_route_fuzzed_never_5xx_never_outside_home(target):
    server, admin, canary, root = target
    auth = {"Authorization": f"Bearer {admin}"}
    spec = httpx.get(server.url + "/openapi.json", headers=auth).json()  # keyed once keys exist
    ops = [(m.upper(), path, op) for path, item in spec["paths"].items() for m, op in item.items()
           if not (path.startswith("/v1/keys/") and m == "delete")]  # revoking keys by name could lock the fuzzer out
    names = _nasty(str(canary))
    before = _tree(root, skip=root / "home")
    seen: dict[str, set] = {}

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    @given(_requests(ops, spec, names))
    def check(req):
        headers = auth | req.pop("headers", {})
        r = httpx.request(req.pop("method"), server.url + req.pop("url"), headers=headers, timeout=120, **req)
        seen.setdefault(r.url.path.split("/")[2] if r.url.path.startswith("/v1/") else r.url.path, set()).add(r.status_code)
        assert r.status_code < 500, (r.request.method, str(r.url)[:200], r.text[:400])
        assert CANARY not in r.text
        if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}

    check()
    for template in ("/v1/chat/completions", "/v1/embeddings", "/v1/classify", "/v1/summarize"):
        # Each also once as its valid body: which routes the draws get past validation shifts whenever
        # a schema gains fields, and the point is that they work, not that the draw hit them.
        r = httpx.post(server.url + template, json=VALID[template], headers=auth, timeout=120)
        seen.setdefault(template.split("/")[2], set()).add(r.status_code)
    assert _tree(root, skip=root / "home") == before  # nothing written (or removed) outside LOOM_HOME
    reached = {k for k, codes in seen.items() if any(c < 400 for c in codes)}
    assert {"chat", "kb", "embeddings", "classify", "summarize"} <= reached, seen  # the fuzz got past validation too


def test_static_files_do_not_traverse(target):
    server, _, canary, _ = target
    rel = os.path.relpath(canary, "/")
    for path in ("/ui/../../../../" + rel, "/ui/%2e%2e/%2e%2e/%2e%2e/" + rel, "/ui/..%2f..%2f..%2f" + rel,
                 "/ui//" + str(canary), "/ui/%00", "/ui/" + "../" * 12 + "etc/passwd"):
        r = httpx.get(server.url + path)
        assert r.status_code in (400, 404) and CANARY not in r.text and "root:" not in r.text, (path, r.status_code)


_SCHEMA_WORDS = ["type", "properties", "required", "enum", "items", "minimum", "maxLength", "pattern", "anyOf", "$ref",
                 "additionalProperties", "if", "format", "const", "default"]


@st.composite
def _tool_requests(draw, names):
    """Chat bodies with tools: names valid and not, parameter schemas from real keywords with any values,
    every tool_choice form, histories with calls and tool results (matching ids or not)."""
    leaf = st.one_of(st.sampled_from(["object", "string", "integer", "array", "number", "boolean", "null"]),
                     st.integers(-5, 5), st.text(max_size=8), st.booleans(), st.none(), st.sampled_from(["#/nope", "^a+$", "[", "("]))
    schema = st.recursive(st.dictionaries(st.sampled_from(_SCHEMA_WORDS), leaf, max_size=4),
                          lambda inner: st.dictionaries(st.sampled_from(_SCHEMA_WORDS), st.one_of(leaf, inner, st.lists(inner, max_size=3)),
                                                        max_size=4), max_leaves=12)
    good = st.sampled_from(["get_weather", "f", "a-b_c", "x" * 64])
    tool_name = st.one_of(good, good, good, st.text(max_size=70), st.sampled_from(names))
    simple = st.just({"type": "object", "properties": {"a": {"type": "integer", "maximum": 9}}, "required": ["a"],
                      "additionalProperties": False})
    tools = draw(st.lists(st.fixed_dictionaries({"type": st.sampled_from(["function"] * 5 + ["code"]), "function": st.fixed_dictionaries(
        {"name": tool_name, "parameters": st.one_of(schema, simple, simple, simple)})}), max_size=3, unique_by=lambda t: t["function"]["name"]))
    declared = [t["function"]["name"] for t in tools]
    choice = draw(st.one_of(st.sampled_from(["auto", "none", "required", "any", None]),
                            st.builds(lambda n: {"type": "function", "function": {"name": n}}, st.sampled_from(declared + ["nope"]))))
    call_id = draw(st.sampled_from(["call_1", "", "x" * 300]))
    history = [{"role": "user", "content": draw(st.text(max_size=40))}]
    if draw(st.booleans()):
        history.append({"role": "assistant", "content": draw(st.none() | st.text(max_size=10)), "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": draw(tool_name), "arguments": draw(st.sampled_from(
                ['{"a": 1}', "not json", "[]", "", '{"a": "' + "y" * 500 + '"}']))}}]})
    if draw(st.booleans()):
        history.append({"role": "tool", "tool_call_id": draw(st.sampled_from(["call_1", "other", None])), "content": draw(st.text(max_size=20))})
    body = {"model": "slow", "messages": history, "tools": tools, "max_tokens": draw(st.sampled_from([2, 80])),
            "stream": draw(st.booleans()), "parallel_tool_calls": draw(st.booleans())}
    if choice is not None:
        body["tool_choice"] = choice
    if draw(st.booleans()):
        body["logprobs"], body["top_logprobs"] = draw(st.booleans()), draw(st.integers(-1, 25))
    return body


def test_tool_fields_fuzzed_never_5xx(target):
    """The new chat fields (tools, tool_choice, parallel_tool_calls, tool histories, logprobs) with
    hostile values: a 200 or an OpenAI-style 4xx naming a field, never a 5xx or an error event."""
    server, admin, canary, _ = target
    auth = {"Authorization": f"Bearer {admin}"}
    outcomes: set[int] = set()
    reached: set[str] = set()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    @given(_tool_requests(_nasty(str(canary))))
    def check(body):
        r = httpx.post(server.url + "/v1/chat/completions", json=body, headers=auth, timeout=120)
        outcomes.add(r.status_code)
        assert r.status_code < 500, (json.dumps(body)[:600], r.text[:400])
        if r.status_code >= 400:
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        elif body["stream"]:  # a stream that started must not end in an error event
            assert not any(line.startswith('data: {"error"') for line in r.text.splitlines()), r.text[-400:]
        else:
            reached.add(r.json()["choices"][0]["finish_reason"])

    check()
    assert {200, 400} <= outcomes and "length" in reached, (outcomes, reached)  # some got past validation into decoding
