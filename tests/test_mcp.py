"""Loom's built-in tools over the Model Context Protocol (issue 33, item 4), driven by the official `mcp`
SDK's own client: over stdio (the client starts `loom mcp serve`) and streamable HTTP (API keys and
their rate limits apply). Tool failures come back as tool errors naming the fix; nothing names a path."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import pytest

from conftest import loom_cli
from loom.serve.process import _die_with_parent, free_port


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def shop(loom_home, tmp_path):
    notice = tmp_path / "returns.md"
    notice.write_text("# Returns\nUnused items can be returned within 30 days for a full refund.\n\n"
                      "# Shipping\nParcels leave the warehouse every weekday at 4 pm.\n", encoding="utf-8")
    loom_cli("kb", "create", "shop", "--encoder", "minilm")
    loom_cli("kb", "add", "shop", str(notice))
    return loom_home


def texts(result) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


def test_stdio_lists_the_tools_and_calls_them(shop, tmp_path):
    from mcp import Client, StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "loom", "mcp", "serve"],
                                   env={**os.environ, "LOOM_HOME": str(shop)})

    async def session():
        # the server's stderr to a real file: stdio_client's default is the sys.stderr of the moment
        # mcp was imported, which inside another test's in-process CLI call was a StringIO
        with open(tmp_path / "server.err", "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                return await calls(client)

    async def calls(client):
        listed = {t.name: t for t in (await client.list_tools()).tools}
        found = await client.call_tool("kb_search", {"kb": "shop", "query": "how long do I have to send something back", "k": 1})
        total = await client.call_tool("calculator", {"expression": "(3 + 4) * 2 / sqrt(16)"})
        escape = await client.call_tool("calculator", {"expression": "__import__('os').system('id')"})
        outside = await client.call_tool("kb_search", {"kb": "../../etc", "query": "passwd"})
        missing = await client.call_tool("kg_neighbors", {"graph": "nope", "entity": "Paris"})
        return listed, found, total, escape, outside, missing

    listed, found, total, escape, outside, missing = run(session())
    assert {"kb_search", "kb_list", "kg_neighbors", "kg_path", "recommend_for_user", "similar_items", "classify", "summarize",
            "translate", "calculator"} <= set(listed)
    assert listed["kb_search"].input_schema["required"] == ["kb", "query"]
    hit = json.loads(texts(found))["hits"][0]
    assert not found.is_error and "30 days" in hit["text"] and hit["title"] == "Returns"
    assert json.loads(texts(total))["value"] == 3.5
    assert escape.is_error and "is not arithmetic" in texts(escape)
    assert outside.is_error and "is not valid" in texts(outside)
    assert missing.is_error and "nope" in texts(missing)


def test_http_needs_a_key_once_keys_exist_and_obeys_its_rate_limit(shop):
    import subprocess
    import time

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from loom.serve.auth import KeyStore

    _, secret = KeyStore().create("agent", rpm=30)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "loom", "mcp", "serve", "--http", "--port", str(port)],
                              env={**os.environ, "LOOM_HOME": str(shop)}, stderr=subprocess.DEVNULL,
                              preexec_fn=_die_with_parent)  # dies with pytest (issue 34.3)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        for _ in range(100):
            try:
                refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"

        async def session():
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, timeout=60) as http:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    return await client.call_tool("calculator", {"expression": "2 ** 10"})

        assert json.loads(texts(run(session())))["value"] == 1024
        statuses = {httpx.post(url, headers={"Authorization": f"Bearer {secret}"}, json={}, timeout=5).status_code for _ in range(30)}
        assert 429 in statuses
    finally:
        server.terminate()
        server.wait(10)
