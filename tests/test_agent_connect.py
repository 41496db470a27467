"""Tools from outside Loom for agents (issue 33, items 3, 5 and 7): HTTP endpoints declared by the operator
(secrets from the environment, only the declared URL, no redirects followed) and MCP servers (a small
one written here, and Loom's own `loom mcp serve`), reached through the mcp SDK's client."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import loom_cli

WORDS_SERVER = '''
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer(name="words")


@server.tool()
def lookup(word: str) -> dict:
    """The meaning of an English word."""
    meanings = {"loom": "a machine for weaving cloth"}
    if word not in meanings:
        raise ToolError(f"no entry for {word}")
    return {"word": word, "meaning": meanings[word]}


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


server.run("stdio")
'''


class Shop(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Shop.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/moved"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.end_headers()
            return
        if self.headers.get("Authorization") != "Bearer s3cret":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"order": self.path.rsplit("/", 1)[-1], "status": "shipped"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def shop_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Shop.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_tools_reach_only_the_declared_url_with_secrets_from_the_environment(loom_home, shop_api, monkeypatch):
    from loom.apps.agent import agent
    from loom.config import AgentConfig

    schema = json.dumps({"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]})
    loom_cli("agent", "connect", "http", "order_status", "--url", shop_api + "/orders/{order_id}", "--description",
             "The status of a shop order", "--params", schema, "--header", "Authorization: Bearer ${SHOP_TOKEN}")
    loom_cli("agent", "connect", "http", "moved", "--url", shop_api + "/moved", "--description", "A page that moved")
    cfg = AgentConfig(tools=["order_status", "moved", "calculator"])
    agent.check_tools(cfg.tools)
    declared = {t.name: t for t in agent.declared(cfg)}
    assert declared["order_status"].parameters["required"] == ["order_id"] and "order_id" in declared["order_status"].parameters["properties"]

    missing = agent.call_tool("order_status", '{"order_id": "A17"}', cfg, time.monotonic())
    assert missing.error and "SHOP_TOKEN" in missing.result and not Shop.seen  # named, never sent half-filled
    monkeypatch.setenv("SHOP_TOKEN", "s3cret")
    found = agent.call_tool("order_status", '{"order_id": "A17"}', cfg, time.monotonic())
    assert not found.error and json.loads(found.result)["json"] == {"order": "A17", "status": "shipped"}
    assert Shop.seen[-1] == ("/orders/A17", "Bearer s3cret")  # the secret reached the API ...
    assert "s3cret" not in found.result + json.dumps(found.arguments)  # ... and neither the model nor the trace
    escape = agent.call_tool("order_status", '{"order_id": "../admin?x=1"}', cfg, time.monotonic())
    assert Shop.seen[-1][0] == "/orders/..%2Fadmin%3Fx%3D1" and not escape.error  # one encoded segment: still under /orders/
    assert agent.call_tool("order_status", '{"order_id": ".."}', cfg, time.monotonic()).error
    redirected = agent.call_tool("moved", "{}", cfg, time.monotonic())
    assert redirected.error and "redirects are not followed" in redirected.result
    assert [p for p, _ in Shop.seen if "meta-data" in p] == []

    bad = loom_cli("agent", "connect", "http", "evil", "--url", "file:///etc/passwd", "--description", "x", check=False)
    assert bad.returncode == 2 and "not an http(s) URL" in bad.stderr
    undeclared = loom_cli("agent", "create", "x", "--tools", "order_status,shop__refund", check=False)
    assert undeclared.returncode == 2 and "unknown tool 'shop__refund'" in undeclared.stderr


def test_openapi_operations_become_http_tools(loom_home, shop_api, tmp_path, monkeypatch):
    from loom.apps.agent import agent
    from loom.config import AgentConfig

    document = {"openapi": "3.0.0", "info": {"title": "shop", "version": "1"}, "paths": {
        "/orders/{order_id}": {"get": {"operationId": "get_order", "summary": "One order's status",
                                       "parameters": [{"name": "order_id", "in": "path", "schema": {"type": "string"}}]}},
        "/refunds": {"post": {"operationId": "refund", "summary": "Refund an order", "requestBody": {"content": {
            "application/json": {"schema": {"type": "object", "properties": {"order_id": {"type": "string"}}}}}}}}}}
    (tmp_path / "shop.json").write_text(json.dumps(document), encoding="utf-8")
    loom_cli("agent", "connect", "openapi", str(tmp_path / "shop.json"), "--base-url", shop_api, "--only", "get_order",
             "--header", "Authorization: Bearer ${SHOP_TOKEN}")
    listed = {r["name"]: r for r in json.loads(loom_cli("agent", "tools", "--json").stdout)}
    assert listed["get_order"]["kind"] == "http" and "refund" not in listed  # only what was asked for
    monkeypatch.setenv("SHOP_TOKEN", "s3cret")
    step = agent.call_tool("get_order", '{"order_id": "B2"}', AgentConfig(tools=["get_order"]), time.monotonic())
    assert json.loads(step.result)["json"]["status"] == "shipped"


def test_mcp_servers_tools_are_used_through_the_sdk_client(loom_home, tmp_path):
    """A small MCP server written here and Loom's own (`loom mcp serve`), both over stdio."""
    from loom.apps.agent import agent
    from loom.config import AgentConfig

    (tmp_path / "words.py").write_text(WORDS_SERVER, encoding="utf-8")
    loom_cli("agent", "connect", "mcp", "words", "--command", f"{sys.executable} {tmp_path / 'words.py'}", "--tools", "lookup")
    loom_cli("agent", "connect", "mcp", "loom", "--command", f"{sys.executable} -m loom mcp serve")
    listed = {r["name"] for r in json.loads(loom_cli("agent", "tools", "--json").stdout)}
    assert {"words__lookup", "loom__calculator", "loom__kb_search"} <= listed and "words__shout" not in listed  # the allowlist
    cfg = AgentConfig(tools=["words__*", "loom__calculator"])
    agent.check_tools(cfg.tools)
    assert {t.name for t in agent.declared(cfg)} == {"words__lookup", "loom__calculator"}
    meaning = agent.call_tool("words__lookup", '{"word": "loom"}', cfg, time.monotonic())
    assert not meaning.error and "weaving" in json.loads(meaning.result)["result"]["meaning"]
    unknown = agent.call_tool("words__lookup", '{"word": "zzz"}', cfg, time.monotonic())
    assert unknown.error and "no entry for zzz" in unknown.result  # the server's error, as an error result
    assert agent.call_tool("words__shout", '{"text": "hi"}', cfg, time.monotonic()).error  # declared but not allowed
    started = time.perf_counter()
    total = agent.call_tool("loom__calculator", '{"expression": "6 * 7"}', cfg, time.monotonic())
    assert json.loads(total.result)["result"]["value"] == 42 and time.perf_counter() - started < 5  # the session is kept open
    loom_cli("agent", "connect", "mcp", "broken", "--command", f"{sys.executable} -c 'raise SystemExit(3)'", "--timeout", "20")
    down = AgentConfig(tools=["broken__*", "calculator"])
    assert [t.name for t in agent.declared(down)] == ["calculator"]  # a server that cannot start offers no tools ...
    failed = agent.call_tool("broken__anything", "{}", down, time.monotonic())
    assert failed.error and "is unavailable" in failed.result  # ... and a call is an error result, not a crash

