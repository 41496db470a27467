"""`loom kb ...` (knowledge bases) and `loom support ...` (answering customers from them)."""

from __future__ import annotations

import sys

import typer

from loom.cli.output import console, kv_table, print_json, stdout_console

app = typer.Typer(help="Knowledge bases: documents and FAQs, indexed for hybrid search.", no_args_is_help=True)
support_app = typer.Typer(help="Answer customer questions from a knowledge base, with citations and hand-off.",
                          no_args_is_help=True)


@app.command()
def create(
    name: str,
    encoder: str = typer.Option("auto", help="dense encoder: auto (e5 for Chinese content, else minilm) | minilm | e5"),
    model: str = typer.Option(None, help="chat model that writes answers (default: extractive answers)"),
) -> None:
    """Create an empty knowledge base."""
    from loom.apps.support.store import KnowledgeBase

    kb = KnowledgeBase.create(name, encoder)
    if model:
        kb.set_meta("model", model)
    console.print(f"created knowledge base {name} at {kb.path}")


@app.command()
def add(
    name: str,
    paths: list[str] = typer.Argument(..., help="files or folders: .txt .md .html .pdf .docx, FAQ .csv/.jsonl (question, answer)"),
) -> None:
    """Add or update files: changed files replace their chunks, unchanged files are skipped."""
    from loom.apps.support.store import KnowledgeBase

    report = KnowledgeBase(name).add_paths(paths)
    console.print(f"{len(report.added)} added, {len(report.replaced)} replaced, {len(report.unchanged)} unchanged, "
                  f"{len(report.failed)} failed; {report.chunks} chunks in {report.seconds:.1f} s")
    for path, why in report.failed:
        console.print(f"[yellow]skipped[/yellow] {path}: {why}", highlight=False)
    if report.failed and not (report.added or report.replaced or report.unchanged):
        raise typer.Exit(2)


@app.command("list")
def list_all(json_out: bool = typer.Option(False, "--json")) -> None:
    """All knowledge bases."""
    from rich.table import Table

    from loom.apps.support.store import KnowledgeBase, list_kbs

    stats = [KnowledgeBase(n).stats() for n in list_kbs()]
    if json_out:
        print_json(stats)
        return
    table = Table("name", "encoder", "documents", "chunks", "faqs", "MB")
    for s in stats:
        table.add_row(s["name"], s["encoder"], str(s["documents"]), str(s["chunks"]), str(s["faqs"]), f"{s['bytes_on_disk'] / 2**20:.1f}")
    stdout_console().print(table)


@app.command()
def show(name: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """A knowledge base's figures and documents."""
    from loom.apps.support.store import KnowledgeBase

    kb = KnowledgeBase(name)
    stats, docs = kb.stats(), kb.documents()
    if json_out:
        print_json(stats | {"files": docs})
        return
    kv_table(f"knowledge base {name}", stats)
    for d in docs:
        stdout_console().print(f"  {d['kind']:3}  {d['chunks']:5} chunks  {d['source']}", highlight=False)


@app.command()
def rm(name: str) -> None:
    """Delete a knowledge base (its SQLite file)."""
    from loom.apps.support.store import KnowledgeBase

    KnowledgeBase(name).remove()
    console.print(f"removed knowledge base {name}")


@app.command("delete-doc")
def delete_doc(name: str, source: str = typer.Argument(..., help="the document's path as added")) -> None:
    """Remove one document and its chunks."""
    from loom.apps.support.store import KnowledgeBase

    removed = KnowledgeBase(name).delete_document(source)
    console.print(f"removed {source} ({removed} chunks)")


@app.command()
def search(
    name: str,
    query: str,
    k: int = typer.Option(5, "-k", min=1, max=100, help="hits to show"),
    mode: str = typer.Option("hybrid", help="hybrid | bm25 | dense"),
    explain: bool = typer.Option(False, "--explain", help="show each signal's score and rank"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON list of hits"),
) -> None:
    """Search a knowledge base."""
    from loom.apps.support.retrieve import search as run
    from loom.apps.support.store import KnowledgeBase

    hits = run(KnowledgeBase(name), query, k, mode)
    if json_out:
        print_json([h.to_dict() for h in hits])
        return
    out = stdout_console()
    for i, h in enumerate(hits, 1):
        out.print(f"[bold][{i}][/bold] {h.source}" + (f"  ({h.title})" if h.title else "") + f"  score {h.score:.4f}", highlight=False)
        if explain:
            out.print("    " + "  ".join(f"{s}={h.scores[s]:.4f} (#{h.scores[s + '_rank']})" for s in ("bm25", "dense", "faq") if s in h.scores))
        out.print("    " + h.text.replace("\n", " ")[:300], highlight=False)
    if not hits:
        out.print("no hits")


_MIN_SCORE_HELP = ("hand off unless the evidence reaches this: the best passage placed between the KB's off-topic "
                   "level (0) and its own questions' level (1), plus credit for the question's rare words in it "
                   "[the cross-validated default: 0.55, or 0.0 when a reader checks the passage]")


_READER_HELP = ("chat model that reads the chosen passage first and says whether it answers the question: auto (the "
                "writer or the default chat model, when it is qwen2.5-1.5b), off, or a model name")


class _Desk:
    """One KB with its writer and reader loaded once, answering turns on the terminal."""

    def __init__(self, name: str, model: str | None, reader: str | None, min_score: float | None, graph: bool | None) -> None:
        from loom.apps.support.reader import check_choice, open_reader
        from loom.apps.support.store import KnowledgeBase
        from loom.config import SupportConfig

        self.kb = KnowledgeBase(name)
        model = model or self.kb.meta("model") or None
        self.cfg = SupportConfig(model=model, min_score=min_score, graph=graph, reader=check_choice(reader))
        self.generator = None
        if model:
            from loom import registry

            with console.status(f"loading {model}"):
                self.generator = registry.open_backend(model)
        with console.status("loading the reader"):
            self.reader, self._reader_backend = open_reader(self.cfg.reader, model, self.generator,
                                                            warn=lambda m: console.print(f"[yellow]{m}[/yellow]"))

    def answer(self, question: str, history: list, conversation: str):
        from loom.apps.support.answer import SupportTurn
        from loom.apps.support.backend import sources_footer

        turn = SupportTurn(self.kb, question, history, self.cfg, self.generator, reader=self.reader)
        for piece in turn:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write((sources_footer(turn.citations, turn.lang) if turn.citations else "") + "\n")
        turn.record(conversation)
        why = f": {turn.verdict.reason}" if turn.handoff and turn.verdict.reason else ""
        read = turn.reader_verdict()
        note = (f"{turn.mode}, confidence {turn.confidence:.2f}" + (f", handed off to a person{why}" if turn.handoff else "")
                + (f", {read['model']} reads an answer in it with p={read['p_answers']:.2f}" if read else ""))
        console.print(f"[dim]{note}[/dim]")
        return turn

    def close(self) -> None:
        for backend in (self.generator, self._reader_backend):
            if backend is not None:
                backend.close()


@support_app.command()
def ask(
    kb: str = typer.Argument(..., help="knowledge base"),
    question: str = typer.Argument(...),
    model: str = typer.Option(None, help="chat model that writes the answer (default: the KB's, else extractive)"),
    reader: str = typer.Option("auto", "--reader", help=_READER_HELP),
    min_score: float = typer.Option(None, "--min-score", help=_MIN_SCORE_HELP),
    graph: bool = typer.Option(None, "--graph/--no-graph", help="add knowledge-graph facts around the question's entities "
                                                               "(default: when `loom kg build KB` made a graph)"),
    json_out: bool = typer.Option(False, "--json", help="print answer, citations, confidence and hand-off as JSON"),
) -> None:
    """Answer one question, with citations, or hand it to a person when the KB does not cover it."""
    import contextlib
    import io
    import uuid

    desk = _Desk(kb, model, reader, min_score, graph)
    try:
        if not json_out:
            desk.answer(question, [], uuid.uuid4().hex[:16])
            return
        with contextlib.redirect_stdout(io.StringIO()):
            turn = desk.answer(question, [], uuid.uuid4().hex[:16])
        print_json({"answer": turn.text, "citations": turn.citations, "confidence": turn.confidence,
                    "handoff": turn.handoff, "mode": turn.mode, "score": round(turn.verdict.score, 3), "fallback": turn.fallback,
                    "why": turn.verdict.reason, "reader": turn.reader_verdict(), "graph_facts": turn.graph_facts})
    finally:
        desk.close()


@support_app.command()
def chat(
    kb: str = typer.Argument(..., help="knowledge base"),
    model: str = typer.Option(None, help="chat model that writes answers (default: the KB's, else extractive)"),
    reader: str = typer.Option("auto", "--reader", help=_READER_HELP),
    min_score: float = typer.Option(None, "--min-score", help=_MIN_SCORE_HELP),
) -> None:
    """Multi-turn support chat: follow-ups are understood with the history; /reset starts over."""
    import uuid

    desk = _Desk(kb, model, reader, min_score, None)
    conversation, history = uuid.uuid4().hex[:16], []
    console.print(f"[dim]support chat on {kb}; /reset starts a new conversation, /exit quits[/dim]")
    try:
        while True:
            try:
                line = console.input("[bold green]customer>[/bold green] ").strip()
            except EOFError:
                break
            if line in ("/exit", "/quit"):
                break
            if line == "/reset":
                conversation, history = uuid.uuid4().hex[:16], []
                continue
            if line:
                turn = desk.answer(line, history, conversation)
                history += [{"role": "user", "content": line}, {"role": "assistant", "content": turn.text}]
    finally:
        desk.close()


@support_app.command()
def handoffs(kb: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Turns handed over to a person (low confidence or no answer in the KB)."""
    import datetime

    from loom.apps.support.store import KnowledgeBase

    rows = KnowledgeBase(kb).handoffs()
    if json_out:
        print_json(rows)
        return
    for r in rows:
        when = datetime.datetime.fromtimestamp(r["ts"]).strftime("%Y-%m-%d %H:%M")
        stdout_console().print(f"{when}  conv {r['conversation']}  confidence {r['confidence']:.2f}  {r['question']}", highlight=False)
    if not rows:
        stdout_console().print("no hand-offs")
