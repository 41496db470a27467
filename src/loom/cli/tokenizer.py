"""`loom tokenizer train`."""

from __future__ import annotations

from pathlib import Path

import typer

from loom.cli.output import kv_table, print_json

app = typer.Typer(help="Train tokenizers (byte-level BPE or characters).", no_args_is_help=True)


@app.command()
def train(
    data: str = typer.Option(..., "--data", "-d", help="a prepared dataset"),
    name: str = typer.Option(..., "--name", "-n", help="tokenizer name under $LOOM_HOME/tokenizers"),
    vocab_size: int = typer.Option(None, help="bpe: target vocabulary size (default 8000)"),
    kind: str = typer.Option(None, help="bpe | char"),
    min_frequency: int = typer.Option(None, help="bpe: minimum pair frequency"),
    config: Path = typer.Option(None, "--config", "-c", help="YAML preset (configs/tokenizer/*.yaml)"),
    overwrite: bool = typer.Option(False, help="replace an existing tokenizer of that name"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Learn a tokenizer from a dataset; saved as a Hugging Face tokenizer folder with a chat template."""
    from loom.config import TokenizerConfig, load
    from loom.tokenizer.train import train_tokenizer

    cfg = load(TokenizerConfig, config, {"vocab_size": vocab_size, "kind": kind, "min_frequency": min_frequency})
    summary = train_tokenizer(data, name, cfg, overwrite=overwrite)
    if json_out:
        print_json(summary)
    else:
        kv_table(f"tokenizer {name}", summary)
