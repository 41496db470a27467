"""Tools from outside Loom for agents (issue 33, items 3 and 5): HTTP endpoints and MCP servers that the
operator declared in LOOM_HOME/agent-tools.yaml (config.AgentTools). A request can name only what is
declared there: an agent lists `order_status` (an HTTP tool) or `files__read` / `files__*` (an MCP
server's tools), never a URL or a command.

HTTP calls go only to the declared URL: path parameters are percent-encoded (no `/`, no `..`), redirects
are refused rather than followed, and header values such as `Bearer ${SHOP_TOKEN}` are filled from the
server's environment at call time, so secrets are in neither the file, the model's context nor a step's
trace. MCP servers are opened once per process (stdio: the command is started; HTTP: one session) and
kept, each on a background event loop, so a call costs a round trip, not a start-up."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from concurrent.futures import Future
from urllib.parse import quote

import yaml

from loom import atomic, home
from loom.config import AgentTools, HttpTool, McpConnection
from loom.errors import InputError, NotFoundError

MCP_SEPARATOR = "__"  # agent tool names for MCP tools: SERVER__TOOL (OpenAI function names allow [A-Za-z0-9_-])
_RESPONSE_BYTES = 1 << 20  # an HTTP tool's response body is read up to 1 MiB
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load() -> AgentTools:
    from loom.config import load as validated

    path = home.agent_tools_path()
    return validated(AgentTools, path) if path.is_file() else AgentTools()


def save(tools: AgentTools) -> None:
    atomic.write_text(home.agent_tools_path(), yaml.safe_dump(tools.model_dump(exclude_defaults=True), allow_unicode=True,
                                                              sort_keys=False))


def expand(value: str, what: str) -> str:
    """`${VAR}` -> the server's environment variable; a missing one is an error naming the variable only."""
    def one(match: re.Match) -> str:
        if match.group(1) not in os.environ:
            raise InputError(f"{what} needs the environment variable {match.group(1)}, which is not set on the server",
                             f"set {match.group(1)} where `loom serve` runs")
        return os.environ[match.group(1)]
    return _ENV.sub(one, value)


# ---- HTTP tools ---------------------------------------------------------------------------------

def http_url(spec: HttpTool, args: dict) -> tuple[str, dict]:
    """The declared URL with its path parameters filled (each percent-encoded as one segment), and the
    arguments left for the query or body."""
    rest, url = dict(args), spec.url
    for name in re.findall(r"\{(\w+)\}", spec.url):
        value = str(rest.pop(name, "")).strip()
        if not value or value in (".", ".."):
            raise InputError(f"path parameter {name!r} is empty or not a name", f"send {name} as a value")
        url = url.replace("{" + name + "}", quote(value, safe=""))
    return url, rest


def call_http(name: str, spec: HttpTool, args: dict) -> dict:
    import httpx

    url, rest = http_url(spec, args)
    headers = {key: expand(value, f"HTTP tool {name!r}") for key, value in spec.headers.items()}
    query, body = (rest, None) if spec.method in ("GET", "DELETE") else (None, rest)
    try:
        with httpx.Client(timeout=spec.timeout, follow_redirects=False) as client, \
                client.stream(spec.method, url, params=query, json=body, headers=headers) as response:
            raw = b""
            for piece in response.iter_bytes():
                raw += piece
                if len(raw) > _RESPONSE_BYTES:
                    raise InputError(f"the response of {name!r} is over {_RESPONSE_BYTES >> 20} MiB", "ask for less")
    except httpx.TimeoutException as e:
        raise InputError(f"{name!r} did not answer within {spec.timeout:g} s", "try again later, or answer without it") from e
    except httpx.HTTPError as e:
        raise InputError(f"{name!r} could not be reached ({type(e).__name__})", "the service may be down") from e
    if response.is_redirect:  # following it could leave the declared host
        raise InputError(f"{name!r} answered with a redirect ({response.status_code}); redirects are not followed",
                         "the operator should declare the final URL")
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    try:
        content = {"json": json.loads(text)}
    except ValueError:
        content = {"text": text[:4000]}
    if response.status_code >= 400:
        raise InputError(f"{name!r} answered HTTP {response.status_code}: {text[:300]}", "check the arguments")
    return {"status": response.status_code} | content


def openapi_tools(document: dict, base_url: str) -> dict[str, HttpTool]:
    """One HttpTool per operation of an OpenAPI 3 document (named by operationId): path and query
    parameters and a JSON request body's properties become the arguments' schema."""
    tools = {}
    for path, operations in (document.get("paths") or {}).items():
        for method, op in operations.items():
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE") or not isinstance(op, dict):
                continue
            name = op.get("operationId") or re.sub(r"\W+", "_", f"{method}_{path}").strip("_")
            properties, required = {}, []
            for param in op.get("parameters", []):
                if param.get("in") in ("path", "query"):
                    properties[param["name"]] = param.get("schema", {"type": "string"}) | (
                        {"description": param["description"]} if param.get("description") else {})
                    required += [param["name"]] if param.get("required") or param.get("in") == "path" else []
            body = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}).get("schema") or {}
            properties |= body.get("properties", {})
            required += body.get("required", [])
            tools[name] = HttpTool(description=(op.get("summary") or op.get("description") or name)[:1000], method=method.upper(),
                                   url=base_url.rstrip("/") + path, parameters={"type": "object", "properties": properties,
                                                                                "required": required})
    if not tools:
        raise InputError("the OpenAPI document lists no operations", "pass an OpenAPI 3 document with `paths`")
    return tools


# ---- MCP servers ----------------------------------------------------------------------------------

class _McpSessions:
    """One background event loop; per MCP server, a task that holds the open client and serves calls
    (anyio's contexts must be entered and left by the same task)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inboxes: dict[str, asyncio.Queue] = {}
        self._lock = threading.Lock()

    def run(self, server: str, conn: McpConnection, work, timeout: float):
        """work(client) -> coroutine, run on `server`'s open session; waits at most `timeout` seconds."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="loom-mcp", daemon=True).start()
        done: Future = Future()
        session = f"{server} {conn.model_dump_json()}"  # a re-declared server (another command or URL) gets a new session
        asyncio.run_coroutine_threadsafe(self._submit(session, conn, work, done), self._loop)
        try:
            return done.result(timeout)
        except TimeoutError as e:
            raise InputError(f"MCP server {server!r} did not answer within {timeout:g} s", "try again, or answer without it") from e

    async def _submit(self, server: str, conn: McpConnection, work, done: Future) -> None:
        if server not in self._inboxes:
            self._inboxes[server] = asyncio.Queue()
            asyncio.ensure_future(self._hold(server, conn, self._inboxes[server]))
        await self._inboxes[server].put((work, done))

    async def _hold(self, server: str, conn: McpConnection, inbox: asyncio.Queue) -> None:
        try:
            async with _client(conn) as client:
                while True:
                    work, done = await inbox.get()
                    try:
                        done.set_result(await work(client))
                    except Exception as e:  # noqa: BLE001 - the caller hears of it
                        done.set_exception(e)
        except Exception as e:  # noqa: BLE001 - could not connect, or the server went away: fail what waits, reconnect next time
            self._inboxes.pop(server, None)
            while not inbox.empty():
                _, done = inbox.get_nowait()
                done.set_exception(InputError(f"MCP server {server.split()[0]!r} is unavailable ({type(e).__name__}: {str(e)[:200]})",
                                              "check `loom agent tools`; the operator's agent-tools.yaml declares it"))


def _client(conn: McpConnection):
    """The mcp SDK's own client over the declared transport."""
    import contextlib

    from mcp import Client, StdioServerParameters, stdio_client

    if conn.command:
        from mcp.client.stdio import get_default_environment

        env = get_default_environment() | {k: expand(v, "an MCP server") for k, v in conn.env.items()}
        params = StdioServerParameters(command=conn.command[0], args=conn.command[1:], env=env)
        return Client(stdio_client(params, errlog=open(os.devnull, "w")))  # noqa: SIM115 - lives as long as the session

    @contextlib.asynccontextmanager
    async def over_http():
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        headers = {k: expand(v, "an MCP server") for k, v in conn.headers.items()}
        async with httpx2.AsyncClient(headers=headers, timeout=conn.timeout, follow_redirects=False) as http, \
                Client(streamable_http_client(conn.url, http_client=http)) as client:
            yield client
    return over_http()


_SESSIONS = _McpSessions()
_LISTED: dict[str, list] = {}  # server -> its tools (mcp Tool objects), listed once per process


def mcp_tools(server: str, conn: McpConnection) -> list:
    """The server's tools agents may use (its `tools` allowlist applied)."""
    key = f"{server} {conn.model_dump_json()}"
    if key not in _LISTED:
        async def listing(client):
            return (await client.list_tools()).tools
        _LISTED[key] = _SESSIONS.run(server, conn, listing, conn.timeout)
    return [t for t in _LISTED[key] if conn.tools is None or t.name in conn.tools]


def call_mcp(server: str, conn: McpConnection, tool: str, args: dict) -> dict:
    if conn.tools is not None and tool not in conn.tools:
        raise InputError(f"tool {tool!r} of MCP server {server!r} is not allowed", f"allowed: {', '.join(conn.tools)}")

    async def calling(client):
        return await client.call_tool(tool, args)
    result = _SESSIONS.run(server, conn, calling, conn.timeout)
    text = "".join(getattr(part, "text", "") for part in result.content)
    if result.is_error:
        raise InputError(f"{server}{MCP_SEPARATOR}{tool} failed: {text[:500]}", "check the arguments")
    try:
        return {"result": json.loads(text)}
    except ValueError:
        return {"result": text}


def split_mcp(name: str) -> tuple[str, str] | None:
    """`SERVER__TOOL` -> (server, tool), else None."""
    server, sep, tool = name.partition(MCP_SEPARATOR)
    return (server, tool) if sep and server and tool else None


def require_mcp(tools: AgentTools, server: str) -> McpConnection:
    if server not in tools.mcp:
        raise NotFoundError(f"no MCP server named {server!r} is declared", "add it with `loom agent connect mcp NAME ...`")
    return tools.mcp[server]
