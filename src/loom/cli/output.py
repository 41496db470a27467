"""Printing shared by the command modules: JSON to stdout, messages to stderr."""

from __future__ import annotations

import json
import sys

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)  # never re-wrap messages


def stdout_console() -> Console:
    """Tables to stdout; when piped (no terminal to fit) they get room instead of "…" truncation."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def kv_table(title: str, rows: dict) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        table.add_row(str(key), str(value))
    stdout_console().print(table)
