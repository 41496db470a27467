"""`loom serve` (the OpenAI-compatible server), `loom chat` (terminal chat) and `loom keys`."""

from __future__ import annotations

import typer

from loom.cli.output import console, print_json, stdout_console

keys_app = typer.Typer(help="API keys for `loom serve`: once any key exists, every endpoint but /health needs one.",
                       no_args_is_help=True)

DEVICE_HELP = "where local transformers models run: auto | cpu | cuda | mps (auto: a GPU when there is one)"
ENGINE_HELP = ("GGUF engine: auto (llama.cpp on a CPU when installed, else transformers) | llama.cpp (quantised, batched) | "
               "transformers (dequantised fp32; GPUs)")


def serve(
    config: str = typer.Option(None, help="YAML preset (e.g. configs/serve/default.yaml); flags override it"),
    host: str = typer.Option(None, help="interface to bind [127.0.0.1]; 0.0.0.0 exposes the server to the network"),
    port: int = typer.Option(None, help="TCP port [8000]"),
    preload: list[str] = typer.Option(None, "--preload", help="model to load at startup (repeatable); others load on first use"),
    engine: str = typer.Option(None, help=ENGINE_HELP),
    device: str = typer.Option(None, help=DEVICE_HELP + " [auto]"),
    max_batch: int = typer.Option(None, help="sequences decoded together per local model [16]"),
    max_queue: int = typer.Option(None, help="waiting requests per model before answering 503 [64]"),
    max_tokens: int = typer.Option(None, help="default max_tokens when a request sets none [512]"),
    in_process_engines: bool = typer.Option(
        None, "--in-process-engines", help="load llama.cpp in the server process instead of a supervised child per model "
        "(a native crash then ends the server; for benchmarks and debugging)"),
    kb_import_dir: list[str] = typer.Option(
        None, "--kb-import-dir", help="folder from which admin keys may import files into knowledge bases by server path "
        "(repeatable); without one the API reads no server files"),
    log_level: str = typer.Option("warning", help="uvicorn log level: debug, info, warning, error"),
) -> None:
    """Serve every model in the catalog over an OpenAI-compatible HTTP API."""
    from loom import runtime

    runtime.for_serving()  # before torch loads
    import uvicorn

    from loom.config import ServeConfig, load
    from loom.serve.app import create_app
    from loom.serve.auth import KeyStore

    preload_names, preload_paths = _split_preload(preload or [])
    settings = load(ServeConfig, config, {"host": host, "port": port, "preload": preload_names or None, "engine": engine,
                                          "device": device, "max_batch": max_batch, "max_queue": max_queue, "default_max_tokens": max_tokens,
                                          "kb_import_dirs": kb_import_dir or None,
                                          "isolate_engines": False if in_process_engines else None})
    host, port = settings.host, settings.port
    from loom import catalog

    default_chat = catalog.default_chat_model()
    if settings.preload_default_chat:
        from loom.errors import InputError
        from loom.model.pull import RECOMMENDED_CHAT

        if not default_chat:
            raise InputError("this config preloads the default chat model (preload_default_chat) and none is set",
                             f"run `loom models pull {RECOMMENDED_CHAT} --default` once (`make run` does it), or "
                             "`loom models default NAME`")
        if default_chat not in settings.preload:
            settings = settings.model_copy(update={"preload": [default_chat, *settings.preload]})
    from loom.serve.imports import import_roots

    roots = import_roots(settings.kb_import_dirs)  # a missing folder stops here, before anything is announced
    _check_pulled(settings.preload)
    _check_port_free(host, port)
    keyed = KeyStore().any_active()
    if host not in ("127.0.0.1", "localhost", "::1") and not keyed:
        console.print(f"[bold red]WARNING: binding {host} with no API keys: anyone who can reach this machine can use "
                      "every model. Create a key first: loom keys create NAME[/bold red]")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    auth = ' -H "Authorization: Bearer $LOOM_KEY"' if keyed else ""
    chat_model = default_chat or next((m for m in settings.preload if m not in ("minilm", "e5")), "smollm2")
    ask = "Say hello" if chat_model == "smollm2" else "用一句话介绍北京。"  # smollm2 knows English only
    stdout_console().print(
        f"Loom is serving at {url}/v1  (OpenAI-compatible; models: loom models list)\n"
        f"try:\n  curl {url}/v1/chat/completions{auth} -H 'Content-Type: application/json' \\\n"
        f"    -d '{{\"model\": \"{chat_model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"{ask}\"}}]}}'\n"
        f"  curl {url}/v1/embeddings{auth} -H 'Content-Type: application/json' -d '{{\"model\": \"minilm\", \"input\": \"hello\"}}'\n"
        f"stop with Ctrl+C", soft_wrap=True)
    console.print(_default_chat_line(default_chat), soft_wrap=True)
    if roots:
        console.print(f"[dim]admin keys may import knowledge-base files from: {', '.join(map(str, roots))}[/dim]")
    if settings.preload or preload_paths:
        console.print(f"[dim]loading {', '.join(settings.preload + preload_paths)} (the first start converts GGUF files: ~30 s)[/dim]")
    app = create_app(settings, preload_paths=preload_paths, announce=lambda text: console.print(f"[dim]{text}[/dim]"))
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


def _default_chat_line(name: str | None) -> str:
    """Which chat model apps and pages use, why, and how to switch (issue 35: a user should not have to guess)."""
    from loom import catalog
    from loom.model.pull import RECOMMENDED_CHAT, RECOMMENDED_WHY

    if name is None:
        return ("default chat model: none (apps that write ask for a model). Recommended: "
                f"loom models pull {RECOMMENDED_CHAT} --default  ({RECOMMENDED_WHY})")
    why = RECOMMENDED_WHY if name == RECOMMENDED_CHAT else (
        "chosen with `loom models default`" if catalog.default_chat_model_chosen() else "set when it was pulled")
    other = "qwen2.5-0.5b" if name == RECOMMENDED_CHAT else RECOMMENDED_CHAT
    return (f"default chat model: {name}: {why}. Switch with `loom models default {other}` (any chat model in "
            "`loom models list`), then restart; docs/models.md compares them")


def chat(
    model: str = typer.Argument("smollm2", help="a chat model: registered name, run, folder or .gguf file"),
    system: str = typer.Option(None, help="system message"),
    max_tokens: int = typer.Option(512, min=1, help="tokens per answer at most"),
    temperature: float = typer.Option(0.7, min=0.0, max=2.0, help="0 = greedy"),
    engine: str = typer.Option("auto", help=ENGINE_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
) -> None:
    """Chat in the terminal: answers stream as they are generated; /reset clears the history, /exit quits."""
    import sys

    from loom import runtime

    runtime.for_serving()  # before torch loads
    import loom.apps.agent.agent  # noqa: F401  registers `agent:NAME`
    import loom.apps.support.backend  # noqa: F401  registers `support:NAME`, so a KB can be chatted with
    from loom import registry
    from loom.backends.base import Request, Sampling

    _check_engine(engine)
    with console.status(f"loading {model}"):
        backend = registry.open_backend(model, engine=engine, max_batch=1, device=device)
    if "chat" not in backend.info().capabilities:
        from loom.errors import InputError

        raise InputError(f"{model!r} has no chat template", "pick a chat model (see `loom models list`), or use `loom generate`")
    start = [{"role": "system", "content": system}] if system else []
    history = list(start)
    console.print(f"[dim]chatting with {model}; /reset clears the history, /exit or Ctrl+D quits[/dim]")
    while True:
        try:
            line = console.input("[bold green]you>[/bold green] ")
        except EOFError:
            break
        if line.strip() in ("/exit", "/quit"):
            break
        if line.strip() == "/reset":
            history = list(start)
            console.print("[dim]history cleared[/dim]")
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        pieces = []
        for chunk in backend.stream(Request(Sampling(max_tokens=max_tokens, temperature=temperature), messages=history)):
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            pieces.append(chunk.text)
        sys.stdout.write("\n")
        history.append({"role": "assistant", "content": "".join(pieces)})
    backend.close()


def _split_preload(values: list[str]) -> tuple[list[str], list[str]]:
    """--preload values as (catalog names, paths). A value the catalog knows, or a valid name that is
    no file here, is a name (an unknown one fails at startup with the usual hint); anything else is a
    path to a model folder or .gguf file, which only the operator's command line may give."""
    from pathlib import Path

    from loom import catalog, home
    from loom.errors import NotFoundError

    names, paths = [], []
    for value in values:
        try:
            catalog.resolve(value, allow_paths=False)
            names.append(value)
        except NotFoundError:
            (names if home.is_model_name(value) and not Path(value).expanduser().exists() else paths).append(value)
    return names, paths


def _check_pulled(names: list[str]) -> None:
    """A preloaded model that `loom models pull` provides but nobody pulled yet: say how, up front."""
    from loom.errors import InputError
    from loom.model.pull import PULLABLE, pulled

    for name in names:
        if name in PULLABLE and pulled(name) is None:
            raise InputError(f"model {name!r} is not pulled into this LOOM_HOME yet",
                             f"run `loom models pull {name}` once (~{PULLABLE[name].size / 1e6:.0f} MB; `make run` does it)")


def _check_port_free(host: str, port: int) -> None:
    import socket

    from loom.errors import InputError

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror}", f"pass another --port, e.g. {port + 1}, or stop what holds it") from e


def _check_engine(engine: str) -> None:
    from typing import get_args

    from loom.errors import InputError
    from loom.catalog import Engine

    if engine not in get_args(Engine):
        raise InputError(f"unknown engine {engine!r}", f"use one of: {', '.join(get_args(Engine))}")


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="who or what the key is for"),
    rpm: int = typer.Option(None, help="requests per minute (default: unlimited)"),
    tpm: int = typer.Option(None, help="prompt + completion tokens per minute (default: unlimited)"),
    admin: bool = typer.Option(False, "--admin", help="may manage keys over HTTP and on the web Keys page"),
    agents: str = typer.Option(None, "--agents", help="the agents (agent:NAME) it may use, comma-separated, or `none` "
                               "(default: all)"),
) -> None:
    """Create a key. It is printed once: only its hash is stored."""
    from loom.serve.auth import KeyStore

    allowed = None if agents is None else [a.strip() for a in agents.split(",") if a.strip() and a.strip() != "none"]
    record, secret = KeyStore().create(name, rpm, tpm, admin, allowed)
    stdout_console().print(secret)
    console.print(f"[dim]key {record.id} ({name}) created; store it now, it cannot be shown again[/dim]")


@keys_app.command("list")
def keys_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """All keys (ids and names, never the secrets)."""
    import datetime

    from rich.table import Table

    from loom.serve.auth import KeyStore

    keys = KeyStore().list()
    if json_out:
        print_json([k.__dict__ for k in keys])
        return
    table = Table("id", "name", "created", "status", "rpm", "tpm", "admin")
    for k in keys:
        created = datetime.datetime.fromtimestamp(k.created).strftime("%Y-%m-%d %H:%M")
        table.add_row(k.id, k.name, created, "revoked" if k.revoked else "active", str(k.rpm or "-"), str(k.tpm or "-"), "yes" if k.admin else "")
    stdout_console().print(table)


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="key id or name")) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    from loom.serve.auth import KeyStore

    record = KeyStore().revoke(key)
    console.print(f"revoked key {record.id} ({record.name})")


@keys_app.command("usage")
def keys_usage(
    days: float = typer.Option(30.0, help="look back this many days"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Requests, tokens and seconds of audio transcribed, per key."""
    import time

    from rich.table import Table

    from loom.serve.auth import KeyStore

    rows = KeyStore().usage(since=time.time() - days * 86400)
    if json_out:
        print_json(rows)
        return
    table = Table("id", "name", "requests", "prompt tokens", "completion tokens", "audio seconds")
    for r in rows:
        table.add_row(r["id"], r["name"], str(r["requests"]), str(r["prompt_tokens"]), str(r["completion_tokens"]),
                      f"{r['audio_seconds']:.1f}")
    stdout_console().print(table)
