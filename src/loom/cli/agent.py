"""`loom agent create|list|show|rm|run`: agents over Loom's built-in tools (docs/agents.md)."""

from __future__ import annotations

import typer

from loom.cli.output import console, print_json, stdout_console

app = typer.Typer(help="Agents: a chat model calling Loom's tools (KB search, graphs, recommenders, calculator...) "
                  "until it answers; served as agent:NAME.", no_args_is_help=True)


@app.command()
def create(
    name: str = typer.Argument(..., help="the agent's name (served as agent:NAME)"),
    tools: str = typer.Option(..., "--tools", "-t", help="comma-separated built-in tools, e.g. kb_search,calculator"),
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
