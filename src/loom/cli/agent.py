"""`loom agent create|list|rm|run|tools|connect|disconnect`: agents over Loom's tools and declared HTTP and MCP tools (docs/agents.md)."""

from __future__ import annotations

import typer

from loom.cli.output import console, print_json, stdout_console

app = typer.Typer(help="Agents: a chat model calling Loom's tools (KB search, graphs, recommenders, calculator...) "
                  "until it answers; served as agent:NAME.", no_args_is_help=True)


@app.command()
def create(
    name: str = typer.Argument(..., help="the agent's name (served as agent:NAME)"),
    tools: str = typer.Option(..., "--tools", "-t", help="comma-separated tools: built-in (kb_search,calculator...), declared HTTP tools, MCP tools as SERVER__TOOL or SERVER__* (`loom agent tools`)"),
    model: str = typer.Option(None, "--model", "-m", help="chat model (default: `loom models default`)"),
    instructions: str = typer.Option("", "--instructions", "-i", help="the system message: role, which KB to search, tone"),
    first_step: str = typer.Option("auto", help="auto | required (the first step must call a tool)"),
    max_steps: int = typer.Option(4, min=1, max=20, help="model turns before it must answer"),
    max_seconds: float = typer.Option(120.0, min=1, help="wall time per question, tools included"),
    max_tokens: int = typer.Option(512, min=16, max=8192, help="tokens per model turn"),
    replace: bool = typer.Option(False, "--replace", help="overwrite an agent of that name"),
) -> None:
    """Define an agent (saved as LOOM_HOME/agents/NAME.yaml)."""
    from loom import home
    from loom.apps.agent import agent
    from loom.config import AgentConfig
    from loom.errors import ExistsError

    if home.agent_path(name).exists() and not replace:
        raise ExistsError(f"an agent named {name!r} exists", "pass --replace, or pick another name")
    cfg = AgentConfig(model=model, instructions=instructions, tools=[t.strip() for t in tools.split(",") if t.strip()],
                      first_step=first_step, max_steps=max_steps, max_seconds=max_seconds,
                      max_tokens=max_tokens)
    agent.save(name, cfg)
    console.print(f"agent {name}: {', '.join(cfg.tools)}; ask it with `loom agent run {name} \"...\"` or model agent:{name}")


@app.command("list")
def list_agents(json_out: bool = typer.Option(False, "--json")) -> None:
    """The agents defined here."""
    from loom.apps.agent import agent

    rows = [{"name": n, **agent.load(n).model_dump(include={"model", "tools"})} for n in agent.names()]
    if json_out:
        print_json(rows)
        return
    for r in rows:
        stdout_console().print(f"{r['name']:20} {', '.join(r['tools'])}  ({r['model'] or 'default chat model'})", highlight=False)


@app.command()
def rm(name: str) -> None:
    """Delete an agent's definition."""
    from loom import home
    from loom.errors import NotFoundError

    path = home.agent_path(name)
    if not path.is_file():
        raise NotFoundError(f"no agent named {name!r}", "see `loom agent list`")
    path.unlink()
    console.print(f"removed agent {name}")


@app.command()
def run(
    name: str = typer.Argument(...),
    question: str = typer.Argument(...),
    json_out: bool = typer.Option(False, "--json", help="the answer and every step as JSON"),
) -> None:
    """Ask an agent one question; each tool call is shown as it finishes."""
    from loom.apps.agent import agent

    cfg = agent.load(name)
    steps, answer = [], None
    for event in agent.run(cfg, [{"role": "user", "content": question}]):
        if isinstance(event, agent.Step):
            steps.append(event)
            if not json_out:
                mark = "[red]error[/red]" if event.error else "ok"
                console.print(f"[dim]step {len(steps)}:[/dim] {event.tool}({event.arguments}) -> {mark} in {event.seconds:.2f} s\n"
                              f"[dim]  {event.result[:300]}[/dim]", highlight=False)
        else:
            answer = event
    if json_out:
        print_json({"answer": answer.text, "stopped": answer.stopped,
                    "steps": [s.__dict__ for s in steps]})
        return
    stdout_console().print(answer.text, highlight=False)
    if answer.stopped:
        console.print(f"[yellow]stopped: {answer.stopped}[/yellow]")


connect_app = typer.Typer(help="Declare tools from outside Loom for agents: HTTP endpoints and MCP servers "
                          "(LOOM_HOME/agent-tools.yaml; requests can only name what is declared here).", no_args_is_help=True)
app.add_typer(connect_app, name="connect")


def _headers(pairs: list[str] | None) -> dict[str, str]:
    from loom.errors import InputError

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise InputError(f"header {pair!r} is not 'Name: value'", "e.g. --header 'Authorization: Bearer ${SHOP_TOKEN}'")
        out[key.strip()] = value.strip()
    return out


def _declare(kind: str, name: str, spec, replace: bool) -> None:
    from loom import home
    from loom.apps.agent import connect
    from loom.apps.agent.tools import BUILTINS
    from loom.errors import ExistsError

    home.check_name(name, "tool name")
    tools = connect.load()
    table = getattr(tools, kind)
    if (name in table or name in BUILTINS or connect.MCP_SEPARATOR in name) and not replace:
        raise ExistsError(f"a tool or server named {name!r} exists (or the name is reserved)", "pass --replace, or pick another name")
    table[name] = spec
    connect.save(tools)


@connect_app.command("http")
def connect_http(
    name: str = typer.Argument(..., help="the tool's name, as agents list it"),
    url: str = typer.Option(..., help="http(s) URL; {param} marks a path parameter, e.g. http://shop/api/orders/{order_id}"),
    description: str = typer.Option(..., help="what it does (the model reads this)"),
    method: str = typer.Option("GET", help="GET | POST | PUT | PATCH | DELETE"),
    params: str = typer.Option('{"type": "object", "properties": {}}', help="JSON Schema of the arguments, or @FILE"),
    header: list[str] = typer.Option(None, "--header", help="'Name: value', repeatable; ${VAR} is read from the server's environment"),
    timeout: float = typer.Option(10.0, help="seconds per call"),
    replace: bool = typer.Option(False, "--replace"),
) -> None:
    """Declare one HTTP endpoint agents may call."""
    import json
    from pathlib import Path

    from loom.config import HttpTool, load
    from loom.errors import InputError

    try:
        schema = json.loads(Path(params[1:]).read_text(encoding="utf-8") if params.startswith("@") else params)
    except ValueError as e:
        raise InputError(f"--params is not JSON ({e})", "pass a JSON Schema object, or @FILE holding one") from e
    _declare("http", name, load(HttpTool, overrides={"description": description, "method": method.upper(), "url": url,
                                                     "parameters": schema, "headers": _headers(header), "timeout": timeout}),
             replace)
    console.print(f"HTTP tool {name}: {method.upper()} {url}; add it to an agent with --tools {name}")


@connect_app.command("openapi")
def connect_openapi(
    document: str = typer.Argument(..., help="an OpenAPI 3 document (.json or .yaml) on this machine"),
    base_url: str = typer.Option(..., help="where the API is served, e.g. http://127.0.0.1:9000"),
    only: str = typer.Option(None, help="comma-separated operationIds to declare (default: all)"),
    header: list[str] = typer.Option(None, "--header", help="'Name: value' sent with every call; ${VAR} from the environment"),
    replace: bool = typer.Option(False, "--replace"),
) -> None:
    """Declare an API's operations as HTTP tools, one per operationId."""
    from pathlib import Path

    import yaml

    from loom.apps.agent import connect
    from loom.errors import InputError

    tools = connect.openapi_tools(yaml.safe_load(Path(document).read_text(encoding="utf-8")) or {}, base_url)
    wanted = [n.strip() for n in only.split(",")] if only else list(tools)
    if missing := [n for n in wanted if n not in tools]:
        raise InputError(f"no operation {missing[0]!r} in {document}", f"operations: {', '.join(tools)}")
    for name in wanted:
        _declare("http", name, tools[name].model_copy(update={"headers": _headers(header)}), replace)
    console.print(f"declared {len(wanted)} HTTP tools: {', '.join(wanted)}")


@connect_app.command("mcp")
def connect_mcp(
    name: str = typer.Argument(..., help="the server's name; agents list its tools as NAME__TOOL or NAME__*"),
    command: str = typer.Option(None, help="stdio: the command line that starts the server"),
    url: str = typer.Option(None, help="streamable HTTP: the server's MCP endpoint"),
    header: list[str] = typer.Option(None, "--header", help="'Name: value' (HTTP); ${VAR} from the environment"),
    tools: str = typer.Option(None, help="comma-separated tools agents may use (default: all it lists)"),
    timeout: float = typer.Option(30.0, help="seconds per call"),
    replace: bool = typer.Option(False, "--replace"),
) -> None:
    """Declare an MCP server whose tools agents may use."""
    import shlex

    from loom.config import McpConnection, load

    spec = load(McpConnection, overrides={"command": shlex.split(command) if command else None, "url": url,
                                          "headers": _headers(header), "timeout": timeout,
                                          "tools": [t.strip() for t in tools.split(",")] if tools else None})
    _declare("mcp", name, spec, replace)
    console.print(f"MCP server {name}; add its tools to an agent with --tools {name}__TOOL or {name}__*  "
                  "(`loom agent tools` lists them)")


@app.command()
def disconnect(name: str = typer.Argument(..., help="an HTTP tool or MCP server declared with `loom agent connect`")) -> None:
    """Remove a declared HTTP tool or MCP server."""
    from loom.apps.agent import connect
    from loom.errors import NotFoundError

    declared = connect.load()
    if name not in declared.http and name not in declared.mcp:
        raise NotFoundError(f"nothing named {name!r} is declared", "see `loom agent tools`")
    declared.http.pop(name, None)
    declared.mcp.pop(name, None)
    connect.save(declared)
    console.print(f"removed {name}")


@app.command("tools")
def list_tools(json_out: bool = typer.Option(False, "--json")) -> None:
    """Every tool an agent may list: built-in, declared HTTP tools, and each MCP server's tools (listed live)."""
    from loom.apps.agent import agent

    rows = agent.available_tools()
    if json_out:
        print_json(rows)
        return
    for r in rows:
        stdout_console().print(f"{r['name']:28} {r['kind']:9} {r['description'][:100]}", highlight=False)
