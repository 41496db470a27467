"""`loom eval perplexity`."""

from __future__ import annotations

import typer

from loom.cli.output import kv_table, print_json

app = typer.Typer(help="Evaluate models.", no_args_is_help=True)


@app.command()
def perplexity(
    model: str = typer.Argument(..., help="run name, registered model, model folder or .gguf file"),
    data: str = typer.Option(..., "--data", "-d", help="a tokenized dataset name, or a text file"),
    split: str = typer.Option("val", help="dataset split: val | train"),
    seq_len: int = typer.Option(512, help="window length (capped by the model's context)"),
    batch_size: int = typer.Option(8),
    max_tokens: int = typer.Option(0, help="evaluate at most this many tokens (0 = all)"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Cross-entropy and perplexity of MODEL on a dataset split or a file."""
    from loom.errors import InputError
    from loom.eval.lm import evaluate_perplexity

    if split not in ("val", "train"):
        raise InputError(f"unknown split {split!r}", "use --split val or --split train")
    result = evaluate_perplexity(model, data, split, seq_len, batch_size, max_tokens, progress=not json_out)
    if json_out:
        print_json(result)
    else:
        kv_table(f"perplexity of {result['model']}", result)
