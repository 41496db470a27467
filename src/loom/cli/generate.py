"""`loom generate`: stream a completion from a run, a model folder, a .gguf file or a registered model."""

from __future__ import annotations

import sys

import typer

from loom.cli.output import console


def generate(
    model: str = typer.Argument(..., help="run name, registered model, model folder or .gguf file"),
    prompt: str = typer.Option("", "--prompt", "-p", help="text to continue (chat models: the user message)"),
    max_new_tokens: int = typer.Option(200, help="tokens to generate at most"),
    temperature: float = typer.Option(0.8, help="0 = greedy"),
    top_k: int = typer.Option(50, help="0 disables"),
    top_p: float = typer.Option(0.95, help="1 disables"),
    repetition_penalty: float = typer.Option(1.0, help="1 disables; 1.1-1.3 curbs loops"),
    stop: list[str] = typer.Option(None, "--stop", help="stop string (repeatable), not included in the output"),
    seed: int = typer.Option(None, help="fix the sampling RNG"),
    chat: bool = typer.Option(None, "--chat/--no-chat", help="use the chat template (default: on for chat models)"),
    system: str = typer.Option(None, help="system message for chat models"),
    stats: bool = typer.Option(True, "--stats/--no-stats", help="print tokens and tokens/s to stderr"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps (auto: a GPU when there is one)"),
) -> None:
    """Generate text, printed as it is produced."""
    import time

    from loom import catalog, runtime
    from loom.backends.local import generate as make
    from loom.config import GenerateConfig, load
    from loom.model.load import load_model

    cfg = load(GenerateConfig, None, {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k,
                                      "top_p": top_p, "repetition_penalty": repetition_penalty, "stop": stop or [], "seed": seed})
    entry = catalog.resolve(model)
    if entry.task != "generate":
        from loom.errors import InputError

        raise InputError(f"{model!r} is a {entry.task} model, not a text generator", f"use `loom classify {model} TEXT`, or pick a model from `loom models list`")
    rt = runtime.choose(device).apply()
    with console.status(f"loading {entry.name} on {rt.describe()}"):
        lm, tokenizer = load_model(entry)
        lm.to(rt.device)
    gen = make(lm, tokenizer, prompt, cfg, chat=entry.chat if chat is None else chat, system=system, rt=rt)
    t0 = time.perf_counter()
    if prompt and not (entry.chat if chat is None else chat):
        sys.stdout.write(prompt)
    for piece in gen:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    seconds = time.perf_counter() - t0
    if stats:
        console.print(f"[dim]{gen.completion_tokens} tokens in {seconds:.2f} s ({gen.completion_tokens / max(seconds, 1e-9):.1f} tok/s), finish: {gen.finish_reason}, {rt.device}[/dim]")
