"""`loom data prepare|tokenize|list`."""

from __future__ import annotations

from pathlib import Path

import typer

from loom.cli.output import console, kv_table, print_json, stdout_console

app = typer.Typer(help="Prepare raw text and pack it into token shards.", no_args_is_help=True)


@app.command()
def prepare(
    inputs: list[str] = typer.Argument(..., help=".txt/.md/.jsonl/.csv/.parquet files, PDFs and images (OCR), or folders"),
    name: str = typer.Option(..., "--name", "-n", help="dataset name under $LOOM_HOME/datasets"),
    config: Path = typer.Option(None, "--config", "-c", help="YAML preset (configs/data/*.yaml)"),
    text_field: str = typer.Option(None, help="text field/column of .jsonl/.csv/.parquet"),
    split: str = typer.Option(None, help=".txt/.md documents: paragraph | line | file"),
    encoding: str = typer.Option(None, help="input encoding, e.g. gb18030 (default utf-8)"),
    min_chars: int = typer.Option(None, help="drop shorter documents"),
    near_dedup: bool = typer.Option(None, "--near-dedup/--no-near-dedup", help="MinHash near-duplicate removal"),
    exact_dedup: bool = typer.Option(None, "--exact-dedup/--no-exact-dedup"),
    threshold: float = typer.Option(None, help="near-duplicate Jaccard threshold"),
    remove_stopwords: bool = typer.Option(None, "--remove-stopwords/--keep-stopwords", help="for classical pipelines"),
    workers: int = typer.Option(None, help="cleaning processes (0 = auto)"),
    overwrite: bool = typer.Option(False, help="replace an existing dataset of that name"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Clean, filter and deduplicate raw files into a dataset; prints and saves a report."""
    from loom.config import DataConfig, load
    from loom.data.prepare import prepare as run

    cfg = load(DataConfig, config, {
        "text_field": text_field, "split": split, "encoding": encoding, "min_chars": min_chars,
        "near_dedup": near_dedup, "exact_dedup": exact_dedup, "near_dup_threshold": threshold,
        "remove_stopwords": remove_stopwords, "workers": workers,
    })
    report = run(inputs, name, cfg, overwrite=overwrite)
    if json_out:
        print_json(report)
        return
    kv_table(f"dataset {name}", {k: v for k, v in report.items() if k not in ("config", "files", "name", "notes")})
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    from loom import home

    console.print(f"saved: {home.dataset_dir(name)}  (documents.jsonl, report.json)")


@app.command()
def tokenize(
    name: str = typer.Argument(..., help="a prepared dataset"),
    tokenizer: str = typer.Option(..., "--tokenizer", "-t", help="tokenizer name or folder"),
    val_fraction: float = typer.Option(None, help="share of documents held out (default 0.05)"),
    seed: int = typer.Option(None, help="seed of the train/val split"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Pack a prepared dataset into train.bin / val.bin token shards + meta.json."""
    from loom.config import TokenizeConfig, load
    from loom.tokenizer.shards import tokenize_dataset

    meta = tokenize_dataset(name, tokenizer, load(TokenizeConfig, None, {"val_fraction": val_fraction, "seed": seed}))
    if json_out:
        print_json(meta)
        return
    kv_table(f"tokenized {name}", {k: meta[k] for k in ("vocab_size", "dtype", "train_documents", "train_tokens", "val_documents",
                                                      "val_tokens", "split_by")})


@app.command("list")
def list_datasets(json_out: bool = typer.Option(False, "--json")) -> None:
    """Datasets under $LOOM_HOME/datasets."""
    import json

    from loom import home

    rows = []
    root = home.datasets_dir()
    for d in sorted(root.iterdir()) if root.exists() else []:
        if not (d / "report.json").is_file():
            continue
        report = json.loads((d / "report.json").read_text(encoding="utf-8"))
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8")) if (d / "meta.json").is_file() else {}
        rows.append({"name": d.name, "documents": report["documents_out"], "chars": report["chars_out"],
                     "tokenizer": meta.get("tokenizer", {}).get("name"), "train_tokens": meta.get("train_tokens")})
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "documents", "chars", "tokenizer", "train tokens")
    for r in rows:
        table.add_row(r["name"], str(r["documents"]), str(r["chars"]), r["tokenizer"] or "-", str(r["train_tokens"] or "-"))
    stdout_console().print(table)
