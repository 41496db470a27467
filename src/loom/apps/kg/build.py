"""Filling a graph: text documents (files, or a knowledge base's documents and chunks) through an
extractor tier, each document in one transaction.

Tiers: `rules` (loom.apps.kg.extract, no model), `model` (a chat model asked for triples in JSON
mode, sentence groups at a time; any backend, local or remote) and `auto` (rules, plus the model's
triples when a chat model is given). A model's answer that does not parse, or names entities that do
not occur in the text, contributes nothing for that passage (counted in the report).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from loom.apps.kg import extract as rules
from loom.apps.kg.store import Graph
from loom.errors import InputError

TIERS = ("rules", "model", "auto")
_PROMPT = ("Extract the facts stated in the text as JSON: {\"triples\": [{\"subject\": ..., \"subject_type\": "
           "\"PERSON|PLACE|ORG|OTHER\", \"relation\": ..., \"object\": ..., \"object_type\": ...}]}. Use names exactly as "
           "written in the text; relations are short verbs or nouns (located in, born in, founded, capital of; 位于, "
           "出生于, 创立, 首都). Only facts the text states.\n\nText:\n")
_TYPES = {"enum": ["PERSON", "PLACE", "ORG", "OTHER"]}
_NAME = {"type": "string", "minLength": 1, "maxLength": 40}
# What the model tier must answer, enforced token by token (model.constrain): names bounded so a weak
# model cannot spend its budget inside one string, relations from the graph's own predicates (in either
# language; free-form ones rarely matched: qwen2.5-0.5b triple F1 0.118 zh / 0.254 en that way), and
# at most 12 triples a chunk.
TRIPLES_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["triples"], "properties": {"triples": {
    "type": "array", "maxItems": 12, "items": {
        "type": "object", "additionalProperties": False,
        "required": ["subject", "subject_type", "relation", "object", "object_type"],
        "properties": {"subject": _NAME, "subject_type": _TYPES, "relation": {"enum": sorted({label for pair in rules.PREDICATES.values() for label in pair})},
                       "object": _NAME, "object_type": _TYPES}}}}}
_RELATION_KEYS = {label: k for k, pair in rules.PREDICATES.items() for label in pair} | {
    "born in": "born_in", "located in": "located_in", "capital of": "capital_of", "founder of": "founded",
    "founded by": "founded", "headquartered in": "headquartered_in", "part of": "part_of"}


def _check_text(source: str, text: str) -> None:
    if not text.strip():
        raise InputError(f"{source} holds no text", "give a document with some sentences")
    if "\x00" in text[:4096]:
        raise InputError(f"{source} looks binary (NUL bytes)", "give plain text, Markdown, HTML, PDF or DOCX")


def add_document(graph: Graph, source: str, chunks: list[str], tier: str = "rules", backend=None, origin: str = "file") -> dict:
    """Replace `source` in the graph with the facts of its chunks; one transaction."""
    if tier not in TIERS:
        raise InputError(f"unknown extractor {tier!r}", f"use one of: {', '.join(TIERS)}")
    if tier == "model" and backend is None:
        raise InputError("the model extractor needs a chat model", "pass --model NAME (e.g. qwen2.5-0.5b), or use --extractor rules")
    _check_text(source, "\n".join(chunks))
    found = []  # (chunk, mentions, facts, extractor) computed before the transaction opens
    failures = 0
    for c, text in enumerate(chunks):
        if tier in ("rules", "auto"):
            mentions, facts = rules.extract(text)
            found.append((c, text, mentions, facts, "rules"))
        if backend is not None and tier in ("model", "auto"):
            facts, ok = model_facts(backend, text)
            failures += not ok
            found.append((c, text, [], facts, "model"))
    with graph.transaction() as db:
        doc_id = graph.replace_document(db, source, "\n".join(chunks), origin)
        n_facts = n_mentions = 0
        for zh, en in {pair for text in chunks for pair in rules.bilingual_names(text)}:
            graph.merge_in(db, zh, en)  # the text says they are one thing: one entity under both names
        for c, text, mentions, facts, extractor in found:
            for m in mentions:
                graph.add_mention(db, doc_id, c, m.name, m.type, m.start, m.end)
            for f in facts:
                graph.add_fact(db, doc_id, c, (f.subject.name, f.subject.type), f.predicate, (f.object.name, f.object.type),
                               (f.start, f.end), text[f.start:f.end], f.confidence, extractor)
            n_facts += len(facts)
            n_mentions += len(mentions)
    return {"source": source, "chunks": len(chunks), "mentions": n_mentions, "facts": n_facts, "model_failures": failures}


def model_facts(backend, text: str, max_tokens: int = 400) -> tuple[list[rules.Fact], bool]:
    """Triples a chat model states for `text`, its answer held to TRIPLES_SCHEMA. Names must occur in
    the text: that is the span kept as evidence. Returns (facts, whether the answer parsed: a remote
    engine may ignore the schema, and an answer cut by max_tokens does not parse)."""
    from loom.backends.base import Request, Sampling

    request = Request(messages=[{"role": "user", "content": _PROMPT + text}],
                      sampling=Sampling(max_tokens=max_tokens, temperature=0, json_schema=TRIPLES_SCHEMA))
    answer = "".join(chunk.text for chunk in backend.stream(request))
    try:
        triples = json.loads(answer).get("triples", [])
        if not isinstance(triples, list):
            return [], False
    except (json.JSONDecodeError, AttributeError):
        return [], False
    facts = []
    for t in triples:
        if not isinstance(t, dict):
            continue
        s, o, rel = (str(t.get(k) or "").strip() for k in ("subject", "object", "relation"))
        if not (s and o and rel) or s not in text or o not in text or s == o:
            continue
        sentence = _sentence_with(text, s, o)
        subject = rules.Mention(s, _type(t.get("subject_type")), text.find(s), text.find(s) + len(s))
        obj = rules.Mention(o, _type(t.get("object_type")), text.find(o), text.find(o) + len(o))
        predicate = _RELATION_KEYS.get(rel.lower(), rel.lower())
        facts.append(rules.Fact(subject, predicate, obj, sentence[0], sentence[1], 0.6))
    return facts, True


def _type(value) -> str:
    value = str(value or "").upper()
    return value if value in ("PERSON", "PLACE", "ORG") else "OTHER"


def _sentence_with(text: str, a: str, b: str) -> tuple[int, int]:
    """The span of the first sentence naming both (else the whole text)."""
    for m in re.finditer(r"[^。！？!?.\n]+[。！？!?.]?", text):
        if a in m.group(0) and b in m.group(0):
            return m.start(), m.end()
    return 0, len(text)


def add_files(graph_name: str, paths: list[Path], tier: str = "rules", backend=None, progress=None) -> list[dict]:
    """Read files (any format Loom's readers take) and add each as a document named by its file name."""
    from loom.data.readers import read_document

    graph = Graph.open(graph_name, create=True)
    reports = []
    for path in paths:
        if not path.is_file():
            raise InputError(f"no file {path}", "check the path")
        chunks = [block.text for block in read_document(path) if block.text.strip()]
        reports.append(add_document(graph, path.name, chunks or [""], tier, backend))
        if progress:
            progress(reports[-1])
    return reports


def build_from_kb(kb_name: str, tier: str = "rules", backend=None, progress=None) -> dict:
    """The graph named after a knowledge base, brought up to date with it: new or changed documents are
    (re)extracted chunk by chunk, removed ones dropped, unchanged ones skipped. Documents added to the
    graph directly (files, imports) are left alone."""
    import contextlib

    from loom.apps.support.store import KnowledgeBase

    kb = KnowledgeBase(kb_name)
    graph = Graph.open(kb_name, create=True)
    with contextlib.closing(graph.connect()) as db:
        have = {r["source"]: r["sha256"] for r in db.execute("SELECT source, sha256 FROM documents WHERE origin = 'kb'")}
    docs = {d["source"]: d for d in kb.documents()}
    report = {"graph": kb_name, "added": 0, "unchanged": 0, "removed": 0, "facts": 0, "model_failures": 0}
    for source in set(have) - set(docs):
        graph.remove_document(source)
        report["removed"] += 1
    for source in docs:
        chunks = [c["text"] for c in kb.chunks_of(source)]
        if have.get(source) == hashlib.sha256("\n".join(chunks).encode("utf-8")).hexdigest():
            report["unchanged"] += 1
            continue
        result = add_document(graph, source, chunks, tier, backend, origin="kb")
        report["added"] += 1
        report["facts"] += result["facts"]
        report["model_failures"] += result["model_failures"]
        if progress:
            progress(result)
    return {**report, **graph.stats()}
