"""Data -> written report: descriptive statistics, charts and a narrative of the findings.

Every number in the narrative comes from the computed facts: the template narrative formats them
directly; a chat model (optional) gets only the facts and its text is checked, and any number it
writes that is not among the facts makes Loom fall back to the template narrative (and say so).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loom.errors import InputError

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
MAX_ROWS = 2_000_000


def fmt(x: float) -> str:
    """The one way numbers are written, in facts and narrative alike."""
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.2f}"


@dataclass
class Column:
    name: str
    kind: str  # numeric | category
    values: list
    missing: int = 0


@dataclass
class Report:
    title: str
    rows: int
    columns: list[Column]
    facts: list[dict] = field(default_factory=list)  # {"text": sentence, "numbers": [formatted numbers]}
    charts: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG bytes)
    narrative: str = ""
    narrative_source: str = "template"  # or the chat model's name


def load_table(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise InputError(f"data file not found: {path}", "pass a .csv, .json (a list of objects) or .jsonl file")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        if len(rows) < 2:
            raise InputError(f"{path.name} has no data rows", "the first line is the header; add rows below it")
        return rows[0], rows[1:MAX_ROWS + 1]
    if suffix in (".json", ".jsonl"):
        try:
            records = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise InputError(f"{path.name} is not valid JSON ({e.msg}, line {e.lineno})", "fix the file") from e
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            raise InputError(f"{path.name} must hold a list of objects (one per row)", 'e.g. [{"city": "Beijing", "sales": 120}, ...]')
        return records_to_table(records[:MAX_ROWS])
    raise InputError(f"unsupported data file type {suffix or '(none)'}", "use .csv, .json or .jsonl")


def records_to_table(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Objects -> (header: every key in first-seen order, rows of strings; missing/null = "")."""
    header = list(dict.fromkeys(k for r in records for k in r))
    return header, [["" if r.get(h) is None else str(r.get(h)) for h in header] for r in records]


def columns_of(header: list[str], rows: list[list[str]]) -> list[Column]:
    cols = []
    for j, name in enumerate(header):
        raw = [r[j].strip() if j < len(r) else "" for r in rows]
        present = [v for v in raw if v != ""]
        numbers = []
        for v in present:
            try:
                numbers.append(float(v.replace(",", "")))
            except ValueError:
                break
        if present and len(numbers) == len(present):
            cols.append(Column(name, "numeric", numbers, len(raw) - len(present)))
        else:
            cols.append(Column(name, "category", present, len(raw) - len(present)))
    return cols


def compute_facts(title: str, header: list[str], rows: list[list[str]]) -> Report:
    cols = columns_of(header, rows)
    report = Report(title, len(rows), cols)

    def fact(text: str, *numbers: float) -> None:
        report.facts.append({"text": text, "numbers": [fmt(n) for n in numbers]})

    fact(f"The data has {fmt(len(rows))} rows and {fmt(len(cols))} columns.", len(rows), len(cols))
    numeric = [c for c in cols if c.kind == "numeric"]
    for c in numeric:
        a = np.asarray(c.values)
        fact(f"{c.name}: mean {fmt(a.mean())}, median {fmt(float(np.median(a)))}, ranging from {fmt(a.min())} to {fmt(a.max())}.",
             a.mean(), float(np.median(a)), a.min(), a.max())
        if c.missing:
            fact(f"{c.name} is missing in {fmt(c.missing)} rows.", c.missing)
    for c in (c for c in cols if c.kind == "category"):
        counts = _counts(c.values)
        if 1 < len(counts) <= max(50, len(c.values) // 2):
            (top, n), share = counts[0], 100 * counts[0][1] / len(c.values)
            fact(f"{c.name} has {fmt(len(counts))} distinct values; the most common is {top} ({fmt(n)} rows, {fmt(round(share, 2))}%).",
                 len(counts), n, round(share, 2))
            for num in numeric[:2]:  # which group has the highest average of the first numeric columns
                groups = _group_means(c, num, header, rows)
                if groups:
                    best, mean = max(groups.items(), key=lambda kv: kv[1])
                    fact(f"By {c.name}, {best} has the highest average {num.name} ({fmt(mean)}).", mean)
    if len(numeric) >= 2:
        pairs = [(abs(r), r, a.name, b.name) for i, a in enumerate(numeric) for b in numeric[i + 1:]
                 if len(a.values) == len(b.values) and (r := _pearson(a.values, b.values)) is not None]
        if pairs:
            _, r, a, b = max(pairs)
            fact(f"The strongest correlation is between {a} and {b} (r = {fmt(round(r, 2))}).", round(r, 2))
    return report


def _counts(values: list) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _group_means(cat: Column, num: Column, header: list[str], rows: list[list[str]]) -> dict[str, float]:
    ci, ni = header.index(cat.name), header.index(num.name)
    sums: dict[str, list[float]] = {}
    for r in rows:
        if ci < len(r) and ni < len(r) and r[ci].strip() and r[ni].strip():
            sums.setdefault(r[ci].strip(), []).append(float(r[ni].replace(",", "")))
    return {k: float(np.mean(v)) for k, v in sums.items()} if len(sums) <= 50 else {}


def _pearson(a: list[float], b: list[float]) -> float | None:
    x, y = np.asarray(a), np.asarray(b)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def template_narrative(report: Report) -> str:
    return " ".join(f["text"] for f in report.facts)


def numbers_in(text: str) -> set[str]:
    return {m.replace(",", "").rstrip(".") for m in _NUMBER.findall(text)}


def allowed_numbers(report: Report) -> set[str]:
    allowed = set()
    for f in report.facts:
        for n in f["numbers"]:
            allowed |= {n.replace(",", ""), n.replace(",", "").rstrip("0").rstrip(".")}
    return allowed


def narrative_schema(facts: int) -> dict:
    """What the model answers (held to it token by token on Loom's engines): a headline and findings
    that each name the fact they restate, so nothing is read out of free prose."""
    finding = {"type": "object", "properties": {"fact": {"type": "integer", "minimum": 1, "maximum": max(1, facts)},
                                                "sentence": {"type": "string", "minLength": 1, "maxLength": 300}},
               "required": ["fact", "sentence"], "additionalProperties": False}
    return {"type": "object", "properties": {"headline": {"type": "string", "minLength": 1, "maxLength": 120},
                                             "findings": {"type": "array", "items": finding, "minItems": 1, "maxItems": 6}},
            "required": ["headline", "findings"], "additionalProperties": False}


def narrative_text(reply: str) -> str:
    """The narrative from the structured answer; a backend that ignores the schema (a remote engine
    without structured output) answers in prose, which is taken as it is."""
    try:
        value = json.loads(reply)
        return " ".join([value["headline"].strip().rstrip(".") + "."] + [f["sentence"].strip() for f in value["findings"]])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return reply.strip()


def apply_model_narrative(report: Report, backend) -> str | None:
    """Let a chat model write the narrative from the facts alone. Keeps the template narrative (and
    returns why) when the model writes any number that is not among the facts, or the facts do not
    fit its context; returns None when the model's text was adopted."""
    from loom.backends.base import ContextTooLong, Sampling

    facts = "\n".join(f"{i}. {f['text']}" for i, f in enumerate(report.facts, 1))
    prompt = (f"Write a short report narrative titled '{report.title}' from these numbered facts: a headline, then one "
              f"sentence per finding, each citing the fact it restates. Use only these facts and copy every number "
              f"exactly as written; do not compute new numbers.\n\n{facts}")
    try:
        reply = backend.chat([{"role": "user", "content": prompt}],
                             Sampling(max_tokens=400, temperature=0, json_schema=narrative_schema(len(report.facts)))).text
    except ContextTooLong as e:
        return f"the facts do not fit the model's context ({e.message}); using the template narrative"
    text = narrative_text(reply)
    allowed = allowed_numbers(report)
    invented = sorted(n for n in numbers_in(text) if n not in allowed and n.rstrip("0").rstrip(".") not in allowed)
    if invented:
        return f"the model's narrative had numbers not in the data ({', '.join(invented[:5])}); using the template narrative"
    if not text:
        return "the model wrote nothing; using the template narrative"
    report.narrative, report.narrative_source = text, backend.name
    return None


def charts(report: Report, limit: int = 6) -> None:
    from loom.plotting import pyplot

    plt = pyplot()

    for c in report.columns:
        if len(report.charts) >= limit:
            break
        fig, ax = plt.subplots(figsize=(6, 3.2))
        if c.kind == "numeric":
            ax.hist(c.values, bins=min(30, max(5, len(set(c.values)))), color="#4a7bd0")
            caption = f"Distribution of {c.name}"
        else:
            counts = _counts(c.values)[:10]
            if len(counts) < 2:
                plt.close(fig)
                continue
            ax.barh([k for k, _ in counts][::-1], [n for _, n in counts][::-1], color="#4a7bd0")
            caption = f"Most common values of {c.name}"
        ax.set_title(caption)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        report.charts.append((caption, buf.getvalue()))


def render_html(report: Report) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report.title)}</title>",
             "<style>body{font-family:sans-serif;max-width:860px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>",
             f"<h1>{html.escape(report.title)}</h1>", f"<p>{html.escape(report.narrative)}</p>",
             f"<p><small>Narrative: {html.escape(report.narrative_source)}</small></p>", "<h2>Statistics</h2>", _stats_html(report)]
    for caption, png in report.charts:
        parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return "".join(parts) + "</body></html>\n"


def _stats_html(report: Report) -> str:
    rows = ["<table><tr><th>column</th><th>kind</th><th>count</th><th>missing</th><th>mean</th><th>min</th><th>max</th></tr>"]
    for c in report.columns:
        if c.kind == "numeric":
            a = np.asarray(c.values)
            cells = [fmt(len(a)), fmt(c.missing), fmt(a.mean()), fmt(a.min()), fmt(a.max())]
        else:
            cells = [fmt(len(c.values)), fmt(c.missing), "", "", ""]
        rows.append(f"<tr><td>{html.escape(c.name)}</td><td>{c.kind}</td>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    return "".join(rows) + "</table>"


def render_markdown(report: Report, images: list[str]) -> str:
    lines = [f"# {report.title}", "", report.narrative, "", f"_Narrative: {report.narrative_source}_", "", "## Statistics", "",
             "| column | kind | count | missing | mean | min | max |", "|---|---|---|---|---|---|---|"]
    for c in report.columns:
        a = np.asarray(c.values) if c.kind == "numeric" else None
        stats = [fmt(a.mean()), fmt(a.min()), fmt(a.max())] if a is not None else ["", "", ""]
        lines.append(f"| {c.name} | {c.kind} | {fmt(len(c.values))} | {fmt(c.missing)} | " + " | ".join(stats) + " |")
    lines.append("")
    lines += [f"![{caption}]({image})" for (caption, _), image in zip(report.charts, images)]
    return "\n".join(lines) + "\n"
