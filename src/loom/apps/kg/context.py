"""Facts around what a question names, for answers that need more than one passage: the support
answerer appends them (with their sources) when a knowledge base has a graph.

Entities are found by the graph's own names: every alias (two characters or more) that occurs in the
question, longest first, without overlaps. Then the relations within `hops` of them, nearest first.
"""

from __future__ import annotations

import contextlib

from loom.apps.kg import query
from loom.apps.kg.store import Graph
from loom.text import has_cjk


def entities_in(graph: Graph, text: str) -> list[int]:
    """Entity ids whose names occur in the text (longest names first, non-overlapping)."""
    with contextlib.closing(graph.connect()) as db:
        names = db.execute("SELECT alias, entity_id FROM aliases WHERE length(alias) >= 2 ORDER BY length(alias) DESC").fetchall()
    taken = [False] * len(text)
    lowered = text.casefold()
    found: list[int] = []
    for alias, entity_id in names:
        at = lowered.find(alias.casefold())
        if at < 0 or any(taken[at:at + len(alias)]):
            continue
        taken[at:at + len(alias)] = [True] * len(alias)
        if entity_id not in found:
            found.append(entity_id)
    return found


def facts_for(graph: Graph, question: str, hops: int = 2, limit: int = 6) -> list[dict]:
    """Up to `limit` relations near the question's entities, each with its best evidence:
    [{"subject", "predicate", "label", "object", "source", "sentence", "text"}]."""
    import networkx as nx

    seeds = entities_in(graph, question)
    if not seeds:
        return []
    g = query.network(graph)
    undirected = g.to_undirected(as_view=True)
    distance: dict[int, int] = {}
    for seed in seeds:
        if seed in g:
            for node, d in nx.single_source_shortest_path_length(undirected, seed, cutoff=hops).items():
                distance[node] = min(d, distance.get(node, hops + 1))
    edges = [(max(distance[s], distance[o]), s, o, k, data) for s, o, k, data in g.edges(keys=True, data=True)
             if s in distance and o in distance]
    edges.sort(key=lambda e: (e[0], e[3]))
    chinese = has_cjk(question)
    out = []
    with contextlib.closing(graph.connect()) as db:
        for _, s, o, relation_id, data in edges[:limit]:
            row = db.execute("SELECT d.source, e.sentence FROM evidence e JOIN documents d ON d.id = e.doc_id WHERE e.relation_id = ? "
                             "ORDER BY e.confidence DESC LIMIT 1", (relation_id,)).fetchone()
            subject, obj = g.nodes[s]["name"], g.nodes[o]["name"]
            text = query.phrase(data["predicate"], subject, obj, chinese)
            out.append({"subject": subject, "predicate": data["predicate"], "label": query.label(data["predicate"], chinese), "object": obj,
                        "source": row["source"] if row else "", "sentence": row["sentence"] if row else "", "text": text})
    return out
