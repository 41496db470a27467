"""`loom summarize`, `loom translate`, `loom write`, `loom report`: the writing applications."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from loom.cli.output import console, print_json


def read_input(value: str) -> str:
    """A path to a readable file (.txt .md .html .pdf .docx, or a recording: its transcript), or the text itself."""
    path = Path(value).expanduser()
    try:
        is_file = "\n" not in value and len(value) < 1024 and path.is_file()
    except OSError:  # e.g. a text longer than a file name may be
        is_file = False
    if is_file:
        from loom.data.readers import DOC_TYPES, read_document, read_text_file
        from loom.media.audio import AUDIO_TYPES

        if path.suffix.lower() in AUDIO_TYPES:  # a meeting recording: its transcript (the default transcription model)
            from loom.apps import speech

            with console.status(f"transcribing {path.name}"):
                return speech.transcribe_file(path).text
        if path.suffix.lower() in DOC_TYPES - {".txt", ".md", ".markdown"}:
            return "\n\n".join(b.text for b in read_document(path))
        data = path.read_bytes()
        if b"\x00" in data[:4096]:
            from loom.errors import InputError

            raise InputError(f"{path.name} looks binary (it contains NUL bytes)", "pass a text, Markdown, HTML, PDF or .docx file")
        return read_text_file(path)
    return value


def _open_chat(model: str | None, purpose: str):
    from loom import catalog, registry

    name = catalog.chat_model_for(model, purpose)
    with console.status(f"loading {name}"):
        return registry.open_backend(name, max_batch=4)


def summarize(
    source: str = typer.Argument(..., help="a file (.txt .md .html .pdf .docx, or a recording: .m4a .mp3 .wav ...) or the text itself"),
    sentences: int = typer.Option(None, "--sentences", "-n", help="summary length in sentences [3]"),
    ratio: float = typer.Option(None, help="summary length as a share of the sentences, e.g. 0.2"),
    mode: str = typer.Option("extractive", help="extractive (no model needed) | abstractive (a chat model writes it)"),
    method: str = typer.Option("centroid", help="extractive method: centroid | textrank | lead"),
    model: str = typer.Option(None, help="chat model for abstractive mode (default: `loom models default`)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Summarise a document."""
    from loom.apps import summarize as s
    from loom.errors import InputError

    text = read_input(source)
    if mode == "extractive":
        summary = s.extractive(text, sentences, ratio, method)
        print_json({"summary": summary, "mode": mode, "method": method}) if json_out else sys.stdout.write(summary + "\n")
    elif mode == "abstractive":
        backend = _open_chat(model, "abstractive summarisation")
        pieces = []
        for piece in s.abstractive(text, backend, sentences, ratio):
            pieces.append(piece)
            if not json_out:
                sys.stdout.write(piece)
                sys.stdout.flush()
        print_json({"summary": "".join(pieces).strip(), "mode": mode, "model": backend.name}) if json_out else sys.stdout.write("\n")
        backend.close()
    else:
        raise InputError(f"unknown mode {mode!r}", "use --mode extractive or --mode abstractive")


def report(
    data: str = typer.Argument(..., help=".csv, .json (list of objects) or .jsonl"),
    title: str = typer.Option("Data report", help="report title"),
    out: str = typer.Option("report.html", help="output: .html (charts embedded) or .md (charts as PNG files beside it)"),
    model: str = typer.Option(None, help="chat model that writes the narrative (default: templates over the statistics)"),
    json_out: bool = typer.Option(False, "--json", help="print the facts and narrative as JSON too"),
) -> None:
    """Descriptive statistics, charts and a written narrative whose numbers all come from the data."""
    from loom import atomic
    from loom.apps import report as r
    from loom.errors import InputError

    target = Path(out)
    if target.suffix.lower() not in (".html", ".md"):
        raise InputError(f"unsupported report type {target.suffix or '(none)'}", "use --out report.html or --out report.md")
    header, rows = r.load_table(Path(data))
    rep = r.compute_facts(title, header, rows)
    rep.narrative = r.template_narrative(rep)
    if model:
        from loom import registry

        with console.status(f"loading {model}"):
            backend = registry.open_backend(model)
        warning = r.apply_model_narrative(rep, backend)
        backend.close()
        if warning:
            console.print(f"[yellow]{warning}[/yellow]")
    r.charts(rep)
    if target.suffix.lower() == ".html":
        atomic.write_text(target, r.render_html(rep))
    else:
        images = []
        folder = target.with_name(target.stem + "_files")
        folder.mkdir(parents=True, exist_ok=True)
        for i, (_, png) in enumerate(rep.charts, 1):
            atomic.write_bytes(folder / f"chart{i}.png", png)
            images.append(f"{folder.name}/chart{i}.png")
        atomic.write_text(target, r.render_markdown(rep, images))
    if json_out:
        print_json({"title": title, "rows": rep.rows, "facts": rep.facts, "narrative": rep.narrative,
                    "narrative_source": rep.narrative_source, "charts": [c for c, _ in rep.charts], "out": str(target)})
    else:
        console.print(f"wrote {target} ({len(rep.facts)} facts, {len(rep.charts)} charts, narrative: {rep.narrative_source})")


def write(
    kind: str = typer.Argument(..., help="story | poem | blog | copy"),
    topic: str = typer.Option(..., help="what to write about (Chinese topic -> Chinese text)"),
    tone: str = typer.Option(None, help="e.g. playful, formal, 幽默"),
    length: str = typer.Option("short", help="short | medium | long, or a number of words (characters for Chinese)"),
    keywords: str = typer.Option("", help="comma-separated words the text must contain"),
    retries: int = typer.Option(2, min=0, max=10, help="new drafts when a draft misses the length or keywords"),
    model: str = typer.Option(None, help="chat model (default: `loom models default`)"),
    seed: int = typer.Option(0, help="sampling seed of the first draft"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Generate a story, poem, blog post or product copy; checks length and keywords, retries."""
    from loom.apps import write as w

    w.prompt(kind, topic, tone, w.target_length(length), [], "en")  # bad kind/topic/length fail before loading a model
    backend = _open_chat(model, "content generation")

    def retrying(draft) -> None:
        if not json_out:
            sys.stdout.write("\n")
        console.print(f"[yellow]draft {draft.attempt}: {'; '.join(draft.problems)}; writing another[/yellow]")

    final = None
    for item in w.write(kind, topic, backend, tone, length, keywords.replace("，", ",").split(","), retries, seed, retrying):
        if isinstance(item, str):
            if not json_out:
                sys.stdout.write(item)
                sys.stdout.flush()
        else:
            final = item
    backend.close()
    if json_out:
        print_json({"text": final.text, "drafts": final.drafts, "best_draft": final.attempt, "problems": final.problems,
                    "model": backend.name})
    else:
        sys.stdout.write("\n")
    if final.problems:
        console.print(f"[bold red]after {final.drafts} drafts the best one still breaks the request: {'; '.join(final.problems)}[/bold red]")
        raise typer.Exit(3)


def translate(
    source: str = typer.Argument(..., help="a file (.txt .md ...) or the text itself"),
    to: str = typer.Option(..., "--to", help="target language: zh | en"),
    glossary: str = typer.Option(None, help="CSV with columns source,target: required term translations"),
    out: str = typer.Option(None, help="write the translation here (default: stdout)"),
    model: str = typer.Option(None, help="chat model (default: `loom models default`)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Translate between Chinese and English, keeping Markdown structure and enforcing a glossary."""
    from loom import atomic
    from loom.apps import translate as t

    text = read_input(source)
    t.check_pair(text, to)  # language problems fail before loading a model
    terms = t.read_glossary(Path(glossary), to) if glossary else {}
    backend = _open_chat(model, "translation")
    result = t.translate(text, to, backend, terms, progress=Path(source).is_file() and not json_out)
    backend.close()
    if out:
        atomic.write_text(Path(out), result.text)
    if json_out:
        print_json({"translation": result.text, "glossary_checked": result.glossary_checked,
                    "glossary_missing": [{"source": s, "target": d} for s, d in result.glossary_missing]})
    elif not out:
        sys.stdout.write(result.text + ("" if result.text.endswith("\n") else "\n"))
    if result.glossary_missing:
        missing = ", ".join(f"{s} -> {d}" for s, d in result.glossary_missing)
        console.print(f"[bold red]glossary terms missing from the translation: {missing}[/bold red]")
        raise typer.Exit(3)
