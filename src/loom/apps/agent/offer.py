"""Which of an agent's tools a turn offers: those the conversation so far gives something to work on.
Offered five tools, qwen2.5-1.5b looked orders up for a returns question and answered "how long does a
full charge take" with a graph path to an entity named "Full Charge Time"; with the choice narrowed to
what the question mentions, it searched the knowledge base and answered both right (bench/agent.py)."""

from __future__ import annotations

import re

from loom.apps.agent import connect
from loom.model.tools import Tool

_ID = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{0,6}\d[\w-]{0,30}")  # an id a lookup needs: A1001, u3, SKU-42


def offered(tools: list[Tool], talk: list[dict], outside=None) -> list[Tool]:
    """The tools the conversation so far gives something to work on (a small model chooses among 5 tools
    badly: qwen2.5-1.5b looked orders up for a returns question). A graph tool when an entity of a graph
    is mentioned, a recommender when a known user or item is, a calculator or an endpoint whose URL
    needs an id when an id-like token (digits) was said; search, text tools and MCP tools always. Tool
    results count as said, so a second step can use what the first found. None left: all of them."""
    said = "\n".join(m.get("content") if isinstance(m.get("content"), str) else "" for m in talk if m["role"] != "system")
    has_id = bool(_ID.search(said))
    outside = outside or connect.load()  # the loop passes the declarations it read once per question
    keep = []
    for tool in tools:
        enum = lambda key: tool.parameters["properties"].get(key, {}).get("enum") or []  # noqa: E731 - the names that exist
        if tool.name in ("kg_neighbors", "kg_path"):  # a path joins two entities: offered once two are named
            ok = _graph_mentions(enum("graph"), said) >= (2 if tool.name == "kg_path" else 1)
        elif tool.name in ("recommend_for_user", "similar_items"):
            ok = _recommender_knows(enum("model"), said, "user" if tool.name == "recommend_for_user" else "item")
        elif tool.name == "calculator" or (tool.name in outside.http and "{" in outside.http[tool.name].url):
            ok = has_id
        else:
            ok = True
        keep += [tool] if ok else []
    return keep or tools


def _graph_mentions(graphs: list[str], said: str) -> int:
    """How many entities of one graph the text names (the most over the graphs)."""
    from loom.apps.kg.context import entities_in
    from loom.apps.kg.store import Graph

    return max((len(set(entities_in(Graph.open(name), said))) for name in graphs), default=0)


def _recommender_knows(models: list[str], said: str, kind: str) -> bool:
    from loom.apps.recommend import service

    tokens = set(re.findall(r"[\w.-]+", said))
    for name in models:
        known = service.get(name).user_index if kind == "user" else service.get(name).item_index
        if tokens & known.keys():
            return True
    return False
