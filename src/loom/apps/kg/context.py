"""Facts around what a question names, for answers that need more than one passage: the support
answerer appends them (with their sources) when a knowledge base has a graph.

Entities are found by the graph's own names. The question is cut into units (each Chinese character
alone, other letter/digit runs whole), and every run of consecutive units up to MAX_KEY characters is
looked up in the aliases' key index, in the form `store.key` gives names. Longest matches win, and
matches do not overlap. Then the relations within `hops` of them, nearest first.

Cost: about (units x units per name) index lookups per question, whatever the graph's size (a scan of
every alias was 100k string searches per question at 100k aliases). An English name matches whole
words only: "Paris" is not found inside "comparison".
"""

from __future__ import annotations

import contextlib
import unicodedata

from loom.apps.kg import query
from loom.apps.kg.store import Graph
from loom.text import has_cjk, units

MAX_KEY = 64  # characters of a name's lookup form; longer runs of the question are not looked up
_LOOKUP_CHUNK = 500  # keys per SQL query (SQLite allows a few thousand bound values at most)


def _candidates(text: str) -> list[tuple[int, int, str]]:
    """(first unit, end unit, lookup key) for each run of units the question holds. A run that starts
    with "the" is skipped: store.key drops a leading "the", so the run after it gives the same key."""
    parts = units(unicodedata.normalize("NFKC", text).casefold())
    out = []
    for i in range(len(parts)):
        if parts[i] == "the" and i + 1 < len(parts):
            continue
        joined = ""
        for j in range(i, len(parts)):
            joined += parts[j]
            if len(joined) > MAX_KEY:
                break
            if len(joined) >= 2:
                out.append((i, j + 1, joined))
    return out


def entities_in(graph: Graph, text: str) -> list[int]:
    """Entity ids whose names occur in the text (longest names first, non-overlapping)."""
    found_keys = _candidates(text)
    keys = list({k for _, _, k in found_keys})
    ids: dict[str, int] = {}
    with contextlib.closing(graph.connect()) as db:
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start:start + _LOOKUP_CHUNK]
            ids.update(db.execute(f"SELECT key, entity_id FROM aliases WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall())
    hits = sorted((h for h in found_keys if h[2] in ids), key=lambda h: (-len(h[2]), h[0]))
    taken: set[int] = set()
    found: list[int] = []
    for first, end, k in hits:
        if taken.intersection(range(first, end)):
            continue
        taken.update(range(first, end))
        if ids[k] not in found:
            found.append(ids[k])
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
