"""`loom mcp serve`: Loom's built-in tools for other agents over the Model Context Protocol (docs/agents.md)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Model Context Protocol: Loom's tools for other agents (Claude Desktop, IDE agents, Dify, LangChain).",
                  no_args_is_help=True)


@app.command()
def serve(
    http: bool = typer.Option(False, "--http", help="streamable HTTP at http://HOST:PORT/mcp (default: stdio, for a client "
                              "that starts this command itself)"),
    host: str = typer.Option("127.0.0.1", help="--http: interface to bind"),
    port: int = typer.Option(8765, min=1, max=65535, help="--http: port"),
) -> None:
    """Serve the built-in tools (kb_search, kg_neighbors, recommend_for_user, classify, summarize, translate,
    calculator, ...). Over HTTP the server's API keys and their rate limits apply."""
    from loom.serve import mcp_server

    if http:
        typer.echo(f"MCP over streamable HTTP at http://{host}:{port}/mcp", err=True)
        mcp_server.run_http(host, port)
    else:
        mcp_server.run_stdio()
