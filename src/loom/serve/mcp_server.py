"""`loom mcp serve`: Loom's built-in tools (loom.apps.agent.tools: knowledge-base search, knowledge
graphs, recommenders, classifiers, summaries, translation, a calculator) as a Model Context Protocol
server, with the official `mcp` SDK (2.x, MCPServer), so Claude Desktop, IDE agents, Dify and LangChain
agents can use them.

    loom mcp serve                     stdio: the client starts it (Claude Desktop's "command")
    loom mcp serve --http --port 8765  streamable HTTP at http://127.0.0.1:8765/mcp

Over HTTP the server's API keys apply as they do to `loom serve`: once a key exists, every request
needs `Authorization: Bearer <key>` (401 otherwise), and the key's requests-per-minute limit holds
(429 with Retry-After). A tool that fails returns an MCP tool error naming the problem and the fix;
the server carries on."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from loom.errors import LoomError

INSTRUCTIONS = ("Loom's applications as tools: search a knowledge base (kb_list names them), follow a knowledge graph, "
                "recommend items, label texts with a classifier, summarise, translate between Chinese and English, and do "
                "arithmetic. Name knowledge bases, graphs and models as kb_list and the operator give them.")


def build():
    """The MCPServer with every built-in tool registered."""
    from mcp.server.mcpserver import MCPServer

    from loom.apps.agent.tools import BUILTINS

    server = MCPServer(name="loom", title="Loom", instructions=INSTRUCTIONS, version="0.1", log_level="WARNING")
    for name, fn in BUILTINS.items():
        server.add_tool(_reporting(fn), name=name, description=(fn.__doc__ or "").strip())
    return server


def _reporting(fn: Callable) -> Callable:
    """The tool with Loom's errors as MCP tool errors: "message (fix)", returned to the caller."""
    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    def tool(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LoomError as e:
            raise ToolError(f"{e.message} ({e.hint})" if e.hint else e.message) from None
    return tool


def http_app(keys=None, limiter=None):
    """The streamable HTTP app (path /mcp) behind the API-key and rate-limit check."""
    from loom.serve.auth import KeyStore, RateLimiter

    app = build().streamable_http_app(streamable_http_path="/mcp")
    return KeyGate(app, keys or KeyStore(), limiter or RateLimiter())


class KeyGate:
    """ASGI middleware: the same key rules as `loom serve` (no keys made yet: open; else a valid,
    unrevoked key within its rpm). Lifespan and other non-HTTP scopes pass through."""

    def __init__(self, app, keys, limiter) -> None:
        self.app, self.keys, self.limiter = app, keys, limiter

    async def __call__(self, scope, receive, send) -> None:
        import anyio

        if scope["type"] != "http" or not await anyio.to_thread.run_sync(self.keys.any_active):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        presented = header[7:].strip() if header.lower().startswith("bearer ") else ""
        key = await anyio.to_thread.run_sync(self.keys.check, presented) if presented else None
        if key is None:
            await _reply(send, 401, "missing, invalid or revoked API key: send 'Authorization: Bearer <key>'", "invalid_api_key")
            return
        wait = self.limiter.admit(key)
        if wait is not None:
            await _reply(send, 429, f"rate limit reached for key {key.name!r} (rpm {key.rpm}); retry in {wait:.0f} s",
                         "rate_limit_exceeded", {"retry-after": str(max(1, round(wait)))})
            return
        await self.app(scope, receive, send)


async def _reply(send, status: int, message: str, code: str, headers: dict | None = None) -> None:
    body = json.dumps({"error": {"message": message, "type": "authentication_error" if status == 401 else "rate_limit_error",
                                 "param": None, "code": code}}).encode()
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


def run_stdio() -> None:
    build().run("stdio")


def run_http(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(http_app(), host=host, port=port, log_level="warning")
