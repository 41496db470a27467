"""Interactions and item texts for the recommenders: the user's files (CSV, TSV, JSONL, RecBole's
.inter/.item), MovieLens-100k from an installed package, and the user x item matrix the models use.

Interactions are implicit feedback: a row says a user touched an item (a rating, when present, is
kept for filters and reports but every interaction counts once). Ids are strings, mapped to matrix
rows and columns in order of first appearance.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loom.errors import InputError, NotFoundError

USER_COLUMNS = ("user", "user_id", "userid", "uid", "customer", "customer_id", "用户", "用户id")
ITEM_COLUMNS = ("item", "item_id", "itemid", "iid", "product", "product_id", "movie_id", "movie", "物品", "商品", "物品id")
RATING_COLUMNS = ("rating", "score", "stars", "评分")
TIME_COLUMNS = ("timestamp", "time", "ts", "date", "时间")
TITLE_COLUMNS = ("title", "name", "movie_title", "标题", "名称")
TEXT_COLUMNS = ("description", "desc", "overview", "summary", "text", "genres", "genre", "class", "category", "tags",
                "release_year", "year", "描述", "简介", "类别", "标签")
MOVIELENS = "movielens-100k"
MOVIELENS_LICENCE = ("GroupLens research licence: use for research, cite Harper & Konstan (2015), never redistribute; "
                     "read from the installed recbole package")


@dataclass
class Interactions:
    users: list[str]  # external id of each matrix row
    items: list[str]  # external id of each matrix column
    rows: np.ndarray  # int32 [n], user index of each interaction
    cols: np.ndarray  # int32 [n], item index
    ratings: np.ndarray | None = None  # float32 [n] when the file has ratings
    report: dict = field(default_factory=dict)  # what reading did: rows read, duplicates merged, columns used

    def matrix(self, keep: np.ndarray | None = None):
        """users x items CSR of ones (float32), optionally only the interactions where keep is True."""
        from scipy.sparse import csr_matrix

        rows, cols = (self.rows, self.cols) if keep is None else (self.rows[keep], self.cols[keep])
        return csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(self.users), len(self.items)))


@dataclass
class Items:
    ids: list[str]
    texts: dict[str, str]  # item id -> "title. genres. description"
    titles: dict[str, str]  # item id -> title (for explanations), or the id itself


def movielens_files() -> tuple[Path, Path]:
    """(interactions, items) of MovieLens-100k as RecBole ships them (TSV with `name:type` headers)."""
    spec = importlib.util.find_spec("recbole")  # locate only: importing recbole needs its training stack
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(f"{MOVIELENS} needs the package recbole (its bundled example data)",
                            "pip install --no-deps recbole==1.2.1")
    root = Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-100k"
    return root / "ml-100k.inter", root / "ml-100k.item"


def resolve_data(data: str) -> tuple[Path, Path | None]:
    """A --data argument: a ready dataset name (movielens-100k, with its item file) or a file path."""
    if data == MOVIELENS:
        return movielens_files()
    path = Path(data)
    if not path.is_file():
        raise NotFoundError(f"no interactions file {data}", f"pass a .csv/.tsv/.jsonl file, or the ready dataset {MOVIELENS}")
    return path, None


def read_table(path: Path) -> tuple[list[str], list[dict]]:
    """(column names, rows as dicts) of a CSV/TSV/JSONL file; RecBole's `name:type` headers lose their type."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start})", "save it as UTF-8 CSV, TSV or JSONL") from e
    if not text.strip():
        raise InputError(f"{path} is empty", "give a file with one interaction per line: user,item[,rating,timestamp]")
    if path.suffix.lower() == ".jsonl" or text.lstrip().startswith("{"):
        from loom.data.sources import read_records  # the JSONL reader the data stage already has

        rows = [{str(k).lower(): v for k, v in row.items()} for row in read_records(path.with_suffix(".jsonl"), text)]
        return list(dict.fromkeys(k for r in rows for k in r)), rows
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".inter", ".item") or "\t" in text.splitlines()[0] else ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = [h.split(":")[0].strip().lower() for h in next(reader)]
    return header, [dict(zip(header, r)) for r in reader if any(c.strip() for c in r)]


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path, required: bool):
    if wanted:
        if wanted.lower() not in columns:
            raise InputError(f"{path} has no column {wanted!r}; its columns are: {', '.join(columns)}",
                             f"pass the {what} column's name")
        return wanted.lower()
    found = next((c for c in candidates if c in columns), None)
    if found is None and required:
        raise InputError(f"{path} has no {what} column (looked for {', '.join(candidates[:5])}); its columns are: "
                         f"{', '.join(columns) or '(none)'}", f"name it with --{what}-col")
    return found


def read_interactions(path: Path, user_col: str | None = None, item_col: str | None = None,
                      rating_col: str | None = None, min_rating: float | None = None) -> Interactions:
    """Read interactions; duplicates of a (user, item) pair count once (the highest rating kept).
    min_rating drops interactions rated below it (e.g. 4 for "liked" on a 1-5 scale)."""
    columns, rows = read_table(path)
    ucol = _pick(columns, user_col, USER_COLUMNS, "user", path, True)
    icol = _pick(columns, item_col, ITEM_COLUMNS, "item", path, True)
    rcol = _pick(columns, rating_col, RATING_COLUMNS, "rating", path, False)
    if min_rating is not None and rcol is None:
        raise InputError(f"--min-rating needs ratings but {path} has no rating column", "drop --min-rating or add a rating column")
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    best: dict[tuple[int, int], float] = {}
    skipped = below = 0
    for n, row in enumerate(rows, 2):
        user, item = str(row.get(ucol) or "").strip(), str(row.get(icol) or "").strip()
        if not user or not item:
            skipped += 1
            continue
        rating = 1.0
        if rcol is not None:
            try:
                rating = float(row.get(rcol))
            except (TypeError, ValueError):
                raise InputError(f"{path} row {n}: rating {row.get(rcol)!r} is not a number", "fix or remove that row") from None
            if min_rating is not None and rating < min_rating:
                below += 1
                continue
        key = (users.setdefault(user, len(users)), items.setdefault(item, len(items)))
        best[key] = max(best.get(key, rating), rating)
    if not best:
        raise InputError(f"{path} holds no usable interactions ({len(rows)} rows, {skipped} without a user or item"
                         + (f", {below} below --min-rating" if below else "") + ")", "check the user and item columns")
    pairs = np.array(list(best), dtype=np.int32)
    report = {"file": str(path), "rows": len(rows), "interactions": len(best), "duplicates_merged": len(rows) - skipped - below - len(best),
              "rows_without_user_or_item": skipped, "below_min_rating": below, "users": len(users), "items": len(items),
              "columns": {"user": ucol, "item": icol, "rating": rcol}}
    ratings = np.array(list(best.values()), dtype=np.float32) if rcol else None
    return Interactions(list(users), list(items), pairs[:, 0].copy(), pairs[:, 1].copy(), ratings, report)


def read_items(path: Path, id_col: str | None = None) -> Items:
    """Item texts: the id column plus any title/description/genre columns, joined into one text per item."""
    columns, rows = read_table(path)
    icol = _pick(columns, id_col, ITEM_COLUMNS + ("id",), "item", path, True)
    title = next((c for c in TITLE_COLUMNS if c in columns), None)
    extra = [c for c in TEXT_COLUMNS if c in columns]
    if title is None and not extra:
        raise InputError(f"{path} has no text columns (title, description, genres...); its columns are: {', '.join(columns)}",
                         "add a title or description column")
    texts, titles = {}, {}
    for row in rows:
        item = str(row.get(icol) or "").strip()
        if not item:
            continue
        parts = [str(row.get(c) or "").strip() for c in ([title] if title else []) + extra]
        texts[item] = ". ".join(p for p in parts if p)
        titles[item] = str(row.get(title) or item).strip() if title else item
    return Items(list(texts), texts, titles)
