"""Taking a graph elsewhere and bringing triples in.

- GraphML (one file; Gephi, yEd, networkx, Cytoscape read it),
- CSV in Neo4j's bulk-import layout (a folder with nodes.csv and relationships.csv:
  `neo4j-admin database import full --nodes=nodes.csv --relationships=relationships.csv`),
- JSON (nodes, edges with their evidence),
- import: a CSV of triples (subject, predicate, object[, subject_type, object_type]) becomes one
  document named after the file, so it can be replaced or removed like any other.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from pathlib import Path

from loom import atomic
from loom.apps.kg.query import label, network
from loom.apps.kg.store import Graph
from loom.errors import InputError

FORMATS = ("graphml", "neo4j", "json")


def export(graph: Graph, fmt: str, out: Path) -> dict:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    g = network(graph)
    support = _support(graph)
    if fmt == "graphml":
        import networkx as nx

        simple = nx.MultiDiGraph()
        for n, d in g.nodes(data=True):
            simple.add_node(n, name=d["name"], type=d["type"])
        for s, o, k, d in g.edges(keys=True, data=True):
            simple.add_edge(s, o, key=k, predicate=d["predicate"], label=label(d["predicate"]), support=support.get(k, 0))
        buffer = io.BytesIO()
        nx.write_graphml(simple, buffer, encoding="utf-8")
        atomic.write_bytes(out, buffer.getvalue())
    elif fmt == "neo4j":
        with atomic.folder_writer(out, replace=True) as tmp:
            with (tmp / "nodes.csv").open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["entityId:ID", "name", "type", ":LABEL"])
                w.writerows([n, d["name"], d["type"], f"Entity;{d['type'].title()}"] for n, d in g.nodes(data=True))
            with (tmp / "relationships.csv").open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow([":START_ID", ":END_ID", ":TYPE", "predicate", "support:int"])
                w.writerows([s, o, _rel_type(d["predicate"]), d["predicate"], support.get(k, 0)] for s, o, k, d in g.edges(keys=True, data=True))
    else:
        data = {"graph": graph.name, "nodes": [{"id": n, **d} for n, d in g.nodes(data=True)],
                "edges": [{"id": k, "source": s, "target": o, "predicate": d["predicate"], "label": label(d["predicate"]),
                           "evidence": _evidence(graph, k)} for s, o, k, d in g.edges(keys=True, data=True)]}
        atomic.write_json(out, data)
    return {"format": fmt, "out": str(out), "nodes": g.number_of_nodes(), "edges": g.number_of_edges()}


def _rel_type(predicate: str) -> str:
    """A Neo4j relationship type: upper case, word characters (Chinese kept), underscores."""
    return re.sub(r"\W+", "_", predicate).strip("_").upper() or "RELATED_TO"


def _support(graph: Graph) -> dict[int, int]:
    with contextlib.closing(graph.connect()) as db:
        return {r[0]: r[1] for r in db.execute("SELECT relation_id, COUNT(*) FROM evidence GROUP BY relation_id")}


def _evidence(graph: Graph, relation_id: int) -> list[dict]:
    with contextlib.closing(graph.connect()) as db:
        return [dict(r) for r in db.execute("SELECT d.source, e.chunk, e.start, e.end, e.sentence, e.confidence FROM evidence e "
                                             "JOIN documents d ON d.id = e.doc_id WHERE e.relation_id = ?", (relation_id,))]


def import_triples(graph_name: str, path: Path) -> dict:
    """Add the triples of a CSV (header: subject,predicate,object[,subject_type,object_type]) or a JSONL
    file with the same keys as one document."""
    from loom.data.readers import read_text_file
    from loom.data.sources import read_records

    text = read_text_file(path)  # UTF-8 or GB18030
    rows = read_records(path, text)  # CSV by its suffix, else JSON lines
    if not rows:
        raise InputError(f"{path} holds no triples", "write a header subject,predicate,object and one triple per line")
    missing = [c for c in ("subject", "predicate", "object") if c not in rows[0]]
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)}; its columns are: {', '.join(rows[0])}",
                         "name the columns subject,predicate,object")
    graph = Graph.open(graph_name, create=True)
    bad, loops = [], []
    with graph.transaction() as db:
        doc_id = graph.replace_document(db, f"import:{path.name}", text)
        for n, row in enumerate(rows, 2):
            s, p, o = ((row.get(c) or "").strip() for c in ("subject", "predicate", "object"))
            if not (s and p and o):
                bad.append(n)
                continue
            sentence = f"{s} {p} {o}"
            if not graph.add_fact(db, doc_id, n, (s, (row.get("subject_type") or "OTHER").upper()), p,
                                  (o, (row.get("object_type") or "OTHER").upper()), (0, len(sentence)), sentence, 1.0, "import"):
                loops.append(n)
    return {"graph": graph_name, "imported": len(rows) - len(bad) - len(loops), "skipped_rows": bad, "self_loops_skipped": loops,
            **graph.stats()}
