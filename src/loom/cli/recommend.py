"""`loom recommend train | for-user | similar | list` and `loom eval recommend`."""

from __future__ import annotations

import typer

from loom.cli.output import console, kv_table, print_json, stdout_console

app = typer.Typer(help="Recommenders: collaborative (implicit ALS/BPR/item-kNN, EASE), content and hybrid.",
                  no_args_is_help=True)

DATA_HELP = "interactions .csv/.tsv/.jsonl (user, item[, rating, timestamp]; string ids), or movielens-100k"


@app.command()
def train(
    data: str = typer.Option(..., "--data", "-d", help=DATA_HELP),
    model: str = typer.Option("ease", "--model", "-m", help="pop | itemknn | als | bpr | ease | content | hybrid"),
    name: str = typer.Option(..., "--name", "-n", help="name to save it under ($LOOM_HOME/recommenders/NAME)"),
    items: str = typer.Option(None, "--items", help="item texts .csv/.tsv/.jsonl (id + title/description/genres): "
                                                   "needed by content and hybrid, and for new items"),
    min_rating: float = typer.Option(None, help="count only interactions rated at least this"),
    k: int = typer.Option(10, help="the cut-off tuning optimises (nDCG@k)"),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, help="replace a recommender of that name"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Train a recommender: a small grid tuned on a validation split, then refit on all interactions."""
    from loom.apps.recommend.protocol import Protocol
    from loom.apps.recommend.train import train_and_save

    summary = train_and_save(data, model, name, items, Protocol(k=k, seed=seed), min_rating, overwrite,
                             progress=None if json_out else lambda m: console.print(f"  {m}"))
    if json_out:
        print_json(summary)
        return
    kv_table(f"recommender {name}", summary)


@app.command("for-user")
def for_user(
    name: str = typer.Argument(..., help="a trained recommender"),
    user: str = typer.Argument(None, help="a user id from the training data (a new one gets popular items)"),
    items: str = typer.Option(None, "--items", help="instead of a user: liked item ids, comma-separated"),
    k: int = typer.Option(10, "-k", help="how many"),
    exclude: str = typer.Option(None, help="item ids never to recommend, comma-separated"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Top-k items for a user (or for a list of liked items), each with the items that drove it."""
    from loom.apps.recommend import service
    from loom.errors import InputError

    if user is None and not items:
        raise InputError("give a user id or --items", "e.g. `loom recommend for-user NAME 196` or `--items 50,172`")
    answer = service.get(name).for_user(user, _ids(items), k, _ids(exclude))
    _print(answer, json_out, f"for {'user ' + user if user else 'items ' + items} ({answer['route']})")


@app.command()
def similar(
    name: str = typer.Argument(..., help="a trained recommender"),
    item: str = typer.Option(None, "--item", help="an item id (or exact title)"),
    text: str = typer.Option(None, "--text", help="a free text (content and hybrid recommenders)"),
    k: int = typer.Option(10, "-k"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Items like an item, or like a text."""
    from loom.apps.recommend import service

    answer = service.get(name).similar(item, text, k)
    _print(answer, json_out, f"similar to {item or repr(text)}")


@app.command("list")
def list_recommenders(json_out: bool = typer.Option(False, "--json")) -> None:
    """Trained recommenders."""
    from loom.apps.recommend import store

    rows = []
    for n in store.list_names():
        meta = store.load(n).meta
        rows.append({"name": n, "kind": meta["kind"], "users": len(meta["users"]), "items": len(meta["items"]),
                     "source": meta.get("source"), "params": meta["params"]})
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "kind", "users", "items", "trained on")
    for r in rows:
        table.add_row(r["name"], r["kind"], str(r["users"]), str(r["items"]), str(r["source"]))
    stdout_console().print(table)


def evaluate(
    name: str = typer.Argument(..., help="a trained recommender: its kind is refit and scored under the protocol"),
    data: str = typer.Option(..., "--data", "-d", help=DATA_HELP),
    items: str = typer.Option(None, "--items", help="item texts (content/hybrid); default: the ones it was trained with"),
    k: int = typer.Option(10, "-k"),
    seed: int = typer.Option(0, help="seed of the per-user split"),
    test_fraction: float = typer.Option(0.2, help="share of each user's interactions held out"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Protocol-stamped evaluation: per-user random split, full ranking over all items, seen items
    excluded; recall/nDCG/hit/MRR@k, coverage and popularity bias, next to Pop and item-kNN on the same split."""
    from loom import atomic, home
    from loom.apps.recommend import store
    from loom.apps.recommend.protocol import Protocol
    from loom.apps.recommend.train import evaluate_kind, load_data
    from loom.errors import InputError

    if not 0 < test_fraction < 1:
        raise InputError(f"--test-fraction {test_fraction} is outside (0, 1)", "use e.g. 0.2")
    meta = store.load(name).meta
    interactions, texts, _ = load_data(data, items or meta.get("items_file"), meta.get("min_rating"))
    progress = None if json_out else (lambda m: console.print(f"  {m}"))
    report = evaluate_kind(meta["kind"], interactions, texts, Protocol(test_fraction=test_fraction, seed=seed, k=k),
                           progress=progress)
    report = {"recommender": name, "kind": meta["kind"], **report}
    folder = home.eval_dir(f"{name}-recommend")
    atomic.write_json(folder / "report.json", report)
    if json_out:
        print_json(report)
        return
    from rich.table import Table

    table = Table("model", f"nDCG@{k}", f"recall@{k}", f"hit@{k}", f"MRR@{k}", "coverage", "pop. percentile", "train s",
                  title=f"{report['protocol']['split']}, seed {seed}, full ranking, {report['protocol']['filters']}")
    for model_name, r in report["models"].items():
        table.add_row(model_name, f"{r[f'ndcg@{k}']:.4f}", f"{r[f'recall@{k}']:.4f}", f"{r[f'hit@{k}']:.4f}",
                      f"{r[f'mrr@{k}']:.4f}", f"{r['coverage']:.3f}", f"{r['popularity_percentile']:.3f}",
                      f"{r['train_seconds_with_tuning']:.1f}")
    stdout_console().print(table)
    console.print(f"report: {folder / 'report.json'}")


def _ids(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _print(answer: dict, json_out: bool, title: str) -> None:
    if json_out:
        print_json(answer)
        return
    from rich.table import Table

    table = Table("#", "item", "title", "score", "why", title=title)
    for rank, r in enumerate(answer["results"], 1):
        table.add_row(str(rank), r["item"], r["title"], f"{r['score']:.4f}", "; ".join(r.get("because", [])))
    stdout_console().print(table)
