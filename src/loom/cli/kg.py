"""`loom kg build | add | show | neighbors | path | search | alias | remove | export | import | list`."""

from __future__ import annotations

from pathlib import Path

import typer

from loom.cli.output import console, kv_table, print_json, stdout_console

app = typer.Typer(help="Knowledge graphs: facts extracted from text (Chinese and English), with their sources.",
                  no_args_is_help=True)
EXTRACTOR_HELP = "rules (no model) | model (a chat model in JSON mode) | auto (rules, plus the model's triples when --model is given)"


def _backend(extractor: str, model: str | None):
    if extractor == "rules" or (extractor == "auto" and not model):
        return None
    from loom import catalog, registry

    name = model or catalog.default_chat_model()
    if not name:
        from loom.errors import InputError

        raise InputError("the model extractor needs a chat model", "pass --model NAME (e.g. qwen2.5-0.5b), or use --extractor rules")
    return registry.open_backend(name)


def _progress(json_out: bool):
    return None if json_out else (lambda r: console.print(f"  {r['source']}: {r['facts']} facts, {r['mentions']} entity mentions"))


@app.command()
def build(
    kb: str = typer.Argument(..., help="a knowledge base (`loom kb list`): the graph gets its name"),
    extractor: str = typer.Option("rules", "--extractor", "-e", help=EXTRACTOR_HELP),
    model: str = typer.Option(None, "--model", "-m", help="chat model for --extractor model/auto"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Build or update the graph of a knowledge base: new and changed documents are extracted, removed ones dropped."""
    from loom.apps.kg.build import build_from_kb

    report = build_from_kb(kb, extractor, _backend(extractor, model), _progress(json_out))
    print_json(report) if json_out else kv_table(f"graph {kb}", report)


@app.command()
def add(
    graph: str = typer.Argument(..., help="graph name (made if new)"),
    files: list[Path] = typer.Argument(..., help=".txt .md .html .pdf .docx files; each replaces its earlier version"),
    extractor: str = typer.Option("rules", "--extractor", "-e", help=EXTRACTOR_HELP),
    model: str = typer.Option(None, "--model", "-m"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Add documents to a standalone graph."""
    from loom.apps.kg.build import add_files
    from loom.apps.kg.store import Graph

    reports = add_files(graph, files, extractor, _backend(extractor, model), _progress(json_out))
    stats = Graph.open(graph).stats()
    print_json({**stats, "added": reports}) if json_out else kv_table(f"graph {graph}", stats)


@app.command()
def show(graph: str, entity: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """An entity: its aliases and facts, each with the sentence and document it came from."""
    from loom.apps.kg import query
    from loom.apps.kg.store import Graph

    info = query.show(Graph.open(graph), entity)
    if json_out:
        print_json(info)
        return
    out = stdout_console()
    out.print(f"[bold]{info['name']}[/bold] ({info['type']}); aliases: {', '.join(info['aliases'])}; {info['mentions']} mentions")
    for f in info["facts"]:
        src = f["sources"][0]
        out.print(f"  {f['subject']} —{f['label']}→ {f['object']}  [dim]({f['support']}x; {src['source']}: “{src['sentence']}”)[/dim]")


@app.command()
def neighbors(graph: str, entity: str, hops: int = typer.Option(1, "--hops", help="1 to 4"),
              json_out: bool = typer.Option(False, "--json")) -> None:
    """Entities within N relations of an entity, and the relations among them."""
    from loom.apps.kg import query
    from loom.apps.kg.store import Graph

    result = query.neighbors(Graph.open(graph), entity, hops)
    if json_out:
        print_json(result)
        return
    out = stdout_console()
    for e in result["edges"]:
        out.print(f"{e['subject']} —{e['label']}→ {e['object']}")
    out.print(f"[dim]{len(result['nodes'])} entities within {hops} hop(s) of {result['center']['name']}[/dim]")


@app.command()
def path(graph: str, a: str, b: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """The shortest chain of facts joining two entities."""
    from loom.apps.kg import query
    from loom.apps.kg.store import Graph

    result = query.path(Graph.open(graph), a, b)
    if json_out:
        print_json(result)
        return
    if not result["found"]:
        console.print(f"no path between {a} and {b}")
        raise typer.Exit(1)
    for step in result["steps"]:
        stdout_console().print(f"{step['subject']} —{step['label']}→ {step['object']}")


@app.command()
def search(graph: str, text: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Entities whose name or alias contains the text."""
    from loom.apps.kg import query
    from loom.apps.kg.store import Graph

    hits = query.search(Graph.open(graph), text)
    if json_out:
        print_json(hits)
        return
    for h in hits:
        stdout_console().print(f"{h['name']} ({h['type']}, {h['relations']} relations)")


@app.command()
def alias(graph: str, name: str, other: str) -> None:
    """Make two names one entity (北京 and Beijing), for the facts there and those added later."""
    from loom.apps.kg.store import Graph

    kept = Graph.open(graph).merge(name, other)
    console.print(f"{name} = {other} (shown as {kept})")


@app.command()
def remove(graph: str, source: str = typer.Option(None, "--source", help="remove one document's facts"),
           yes: bool = typer.Option(False, "--yes", help="remove the whole graph without asking")) -> None:
    """Remove one document (and exactly the facts only it supported), or the whole graph."""
    from loom.apps.kg.store import Graph
    from loom.errors import InputError, NotFoundError

    g = Graph.open(graph)
    if source:
        if not g.remove_document(source):
            raise NotFoundError(f"{source!r} is not in graph {graph!r}", "see `loom kg list`")
        console.print(f"removed {source}; now {g.stats()}")
        return
    if not yes:
        raise InputError(f"this removes the whole graph {graph!r}", "pass --yes, or --source FILE for one document")
    g.remove()
    console.print(f"removed graph {graph}")


@app.command("export")
def export_cmd(graph: str, fmt: str = typer.Option("graphml", "--format", "-f", help="graphml | neo4j (a folder of CSVs) | json"),
               out: Path = typer.Option(..., "--out", "-o")) -> None:
    """Write the graph as GraphML, Neo4j bulk-import CSVs or JSON."""
    from loom.apps.kg.export import export
    from loom.apps.kg.store import Graph

    result = export(Graph.open(graph), fmt, out)
    console.print(f"{result['nodes']} entities, {result['edges']} relations -> {out}")


@app.command("import")
def import_cmd(graph: str, file: Path = typer.Argument(..., help="CSV: subject,predicate,object[,subject_type,object_type]"),
               json_out: bool = typer.Option(False, "--json")) -> None:
    """Add triples from a CSV (one document named after the file)."""
    from loom.apps.kg.export import import_triples

    result = import_triples(graph, file)
    print_json(result) if json_out else kv_table(f"graph {graph}", result)


@app.command("list")
def list_graphs(json_out: bool = typer.Option(False, "--json")) -> None:
    """Knowledge graphs and their sizes."""
    from loom.apps.kg.store import Graph, list_names

    rows = [Graph.open(n).stats() for n in list_names()]
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "documents", "entities", "relations", "evidence")
    for r in rows:
        table.add_row(r["name"], *(str(r[k]) for k in ("documents", "entities", "relations", "evidence")))
    stdout_console().print(table)
