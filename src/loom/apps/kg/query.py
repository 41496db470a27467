"""Asking a graph: an entity with its facts and their sources, its neighbourhood, a path between two
entities, a search over names. Graph algorithms are networkx's; the graph is loaded once per
generation of the SQLite file (every write bumps it) and kept for the process."""

from __future__ import annotations

import contextlib
import difflib
import threading

from loom.apps.kg.extract import PREDICATES
from loom.apps.kg.store import Graph, key
from loom.errors import InputError, NotFoundError

_cache: dict[str, tuple[int, object]] = {}
_lock = threading.Lock()


def label(predicate: str, chinese: bool = False) -> str:
    pair = PREDICATES.get(predicate)
    return (pair[0] if chinese else pair[1]) if pair else predicate


_PHRASES = {  # key -> (Chinese, English) sentence for a fact
    "capital_of": ("{s}是{o}的首都", "{s} is the capital of {o}"), "located_in": ("{s}位于{o}", "{s} is located in {o}"),
    "headquartered_in": ("{s}的总部位于{o}", "{s} is headquartered in {o}"), "born_in": ("{s}出生于{o}", "{s} was born in {o}"),
    "founded": ("{s}创立了{o}", "{s} founded {o}"), "part_of": ("{s}属于{o}", "{s} is part of {o}"),
    "works_for": ("{s}任职于{o}", "{s} works for {o}"), "educated_at": ("{s}毕业于{o}", "{s} studied at {o}"),
    "is_a": ("{s}是{o}", "{s} is {o}"),
}


def phrase(predicate: str, subject: str, obj: str, chinese: bool = False) -> str:
    """A fact as a short sentence in the reader's language ("阿里巴巴的总部位于杭州")."""
    pattern = _PHRASES.get(predicate)
    if pattern:
        return pattern[0 if chinese else 1].format(s=subject, o=obj)
    return f"{subject}{predicate}{obj}" if chinese else f"{subject} {predicate} {obj}"


def network(graph: Graph):
    """networkx.MultiDiGraph: nodes = entity ids (name, type), edges = relations (predicate, id)."""
    import networkx as nx

    generation = graph.generation()
    with _lock:
        cached = _cache.get(graph.name)
        if cached and cached[0] == generation:
            return cached[1]
        g = nx.MultiDiGraph()
        with contextlib.closing(graph.connect()) as db:
            for row in db.execute("SELECT id, name, type FROM entities"):
                g.add_node(row["id"], name=row["name"], type=row["type"])
            for row in db.execute("SELECT id, subject_id, predicate, object_id FROM relations"):
                g.add_edge(row["subject_id"], row["object_id"], key=row["id"], predicate=row["predicate"])
        _cache[graph.name] = (generation, g)
        return g


def resolve(graph: Graph, name: str) -> int:
    """The entity id a name or alias stands for; a clear error naming close names otherwise."""
    if not name.strip():
        raise InputError("the entity name is empty", "give a name, e.g. 北京 or Paris")
    with contextlib.closing(graph.connect()) as db:
        row = db.execute("SELECT entity_id FROM aliases WHERE key = ?", (key(name),)).fetchone()
        if row:
            return row[0]
        names = [r[0] for r in db.execute("SELECT alias FROM aliases")]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5) or [n for n in names if name in n or n in name][:5]
    raise NotFoundError(f"no entity {name!r} in graph {graph.name!r}",
                        f"did you mean: {', '.join(close)}" if close else "see `loom kg search GRAPH TEXT`")


def _node(g, entity_id: int) -> dict:
    data = g.nodes[entity_id]
    return {"id": entity_id, "name": data["name"], "type": data["type"]}


def show(graph: Graph, name: str, limit: int = 50) -> dict:
    """An entity, its aliases, and its relations with the sentences and documents that support them."""
    entity_id = resolve(graph, name)
    g = network(graph)
    with contextlib.closing(graph.connect()) as db:
        aliases = [r[0] for r in db.execute("SELECT alias FROM aliases WHERE entity_id = ? ORDER BY alias", (entity_id,))]
        rows = db.execute(
            "SELECT r.id, r.subject_id, r.predicate, r.object_id, COUNT(e.relation_id) AS support, MAX(e.confidence) AS confidence "
            "FROM relations r JOIN evidence e ON e.relation_id = r.id WHERE r.subject_id = ? OR r.object_id = ? "
            "GROUP BY r.id ORDER BY support DESC, confidence DESC LIMIT ?", (entity_id, entity_id, limit)).fetchall()
        facts = []
        for r in rows:
            sources = db.execute("SELECT d.source, e.chunk, e.start, e.end, e.sentence, e.confidence, e.extractor FROM evidence e "
                                 "JOIN documents d ON d.id = e.doc_id WHERE e.relation_id = ? ORDER BY e.confidence DESC LIMIT 5",
                                 (r["id"],)).fetchall()
            facts.append({"subject": g.nodes[r["subject_id"]]["name"], "predicate": r["predicate"], "label": label(r["predicate"]),
                          "object": g.nodes[r["object_id"]]["name"], "support": r["support"], "confidence": r["confidence"],
                          "sources": [dict(s) for s in sources]})
        mentions = db.execute("SELECT COUNT(*) FROM mentions WHERE entity_id = ?", (entity_id,)).fetchone()[0]
    return {**_node(g, entity_id), "aliases": aliases, "mentions": mentions, "facts": facts}


def neighbors(graph: Graph, name: str, hops: int = 1, limit: int = 200) -> dict:
    """Entities within `hops` relations (either direction) and the relations among them."""
    import networkx as nx

    if not 1 <= hops <= 4:
        raise InputError(f"--hops {hops} is out of range", "use 1 to 4")
    entity_id = resolve(graph, name)
    g = network(graph)
    reach = nx.single_source_shortest_path_length(g.to_undirected(as_view=True), entity_id, cutoff=hops)
    keep = sorted(reach, key=lambda n: (reach[n], -g.degree(n)))[:limit]
    sub = g.subgraph(keep)
    return {"center": _node(g, entity_id), "hops": hops,
            "nodes": [{**_node(g, n), "distance": reach[n]} for n in keep],
            "edges": [{"subject": g.nodes[s]["name"], "predicate": d["predicate"], "label": label(d["predicate"]),
                       "object": g.nodes[o]["name"], "source_id": s, "target_id": o} for s, o, d in sub.edges(data=True)]}


def path(graph: Graph, a: str, b: str) -> dict:
    """The shortest chain of relations (either direction) joining two entities."""
    import networkx as nx

    start, end = resolve(graph, a), resolve(graph, b)
    g = network(graph)
    try:
        nodes = nx.shortest_path(g.to_undirected(as_view=True), start, end)
    except nx.NetworkXNoPath:
        return {"from": a, "to": b, "found": False, "steps": []}
    steps = []
    for s, o in zip(nodes, nodes[1:]):
        forward = g.get_edge_data(s, o)
        data, subject, obj = (next(iter(forward.values())), s, o) if forward else (next(iter(g.get_edge_data(o, s).values())), o, s)
        steps.append({"subject": g.nodes[subject]["name"], "predicate": data["predicate"], "label": label(data["predicate"]),
                      "object": g.nodes[obj]["name"]})
    return {"from": g.nodes[start]["name"], "to": g.nodes[end]["name"], "found": True, "steps": steps}


def search(graph: Graph, text: str, limit: int = 20) -> list[dict]:
    """Entities whose name or an alias contains the text (or its lookup form), best connected first."""
    if not text.strip():
        raise InputError("the search text is empty", "give part of a name")
    g = network(graph)
    k = key(text)
    with contextlib.closing(graph.connect()) as db:
        ids = {r[0] for r in db.execute("SELECT entity_id FROM aliases WHERE instr(key, ?) > 0 OR instr(alias, ?) > 0", (k or text, text))}
    ranked = sorted(ids, key=lambda n: (-g.degree(n), g.nodes[n]["name"]))[:limit]
    return [{**_node(g, n), "relations": g.degree(n)} for n in ranked]
