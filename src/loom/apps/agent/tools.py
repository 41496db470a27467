"""Built-in tools over Loom's own applications (issue 33): typed functions that agents call and that
`loom mcp serve` exposes to other agents (Claude Desktop, IDE agents, Dify, LangChain).

Each takes names, never paths: a knowledge base, graph, recommender or classifier is named as
`loom kb list`, `loom kg list`, `loom recommend list` and `loom models list` show them, and names are
validated before anything is opened. Results are small JSON objects; errors are raised as LoomError
with a fix hint, which the MCP server returns to the caller as a tool error (never a crash).

No tool reads or writes the file system, runs a program or reaches the network."""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable

from loom.errors import InputError

_MAX_K = 50


def kb_search(kb: str, query: str, k: int = 5) -> dict:
    """Search a knowledge base for passages that answer a question.
    Returns the k best passages with their source, title, text and where they are (page, or time range
    of a recording); words and meaning both count."""
    from loom.apps.support.retrieve import search
    from loom.apps.support.store import KnowledgeBase

    hits = search(KnowledgeBase(_name(kb, "knowledge base")), _text(query, "query"), _k(k))
    return {"kb": kb, "query": query, "hits": [{key: value for key, value in h.to_dict().items() if key != "scores"}
                                              for h in hits]}


def kb_list() -> dict:
    """The knowledge bases on this server, with their document and chunk counts."""
    from loom.apps.support.store import KnowledgeBase, list_kbs

    return {"knowledge_bases": [{"name": name, **{k: v for k, v in KnowledgeBase(name).stats().items() if k in ("documents", "chunks")}}
                                for name in list_kbs()]}


def kg_neighbors(graph: str, entity: str, hops: int = 1) -> dict:
    """The facts around an entity in a knowledge graph: its neighbours within `hops` (1-2) steps,
    each with the relation and the source the fact came from."""
    from loom.apps.kg import query
    from loom.apps.kg.store import Graph

    if hops not in (1, 2):
        raise InputError(f"hops must be 1 or 2, not {hops}", "ask for direct neighbours (1) or two steps (2)")
    return query.neighbors(Graph.open(_name(graph, "graph")), _text(entity, "entity"), hops=hops, limit=100)


def kg_path(graph: str, a: str, b: str) -> dict:
    """How two entities of a knowledge graph are connected: the shortest chain of facts between them."""
    from loom.apps.kg import query
    from loom.apps.kg.store import Graph

    return query.path(Graph.open(_name(graph, "graph")), _text(a, "a"), _text(b, "b"))


def recommend_for_user(model: str, user: str, k: int = 5) -> dict:
    """Items a trained recommender suggests for a known user, best first, with why."""
    from loom.apps.recommend import service

    return service.get(_name(model, "recommender")).for_user(_text(user, "user"), k=_k(k))


def similar_items(model: str, item: str, k: int = 5) -> dict:
    """Items like a given item (by who chose them and by their descriptions), best first."""
    from loom.apps.recommend import service

    return service.get(_name(model, "recommender")).similar(_text(item, "item"), k=_k(k))


def classify(model: str, texts: list[str]) -> dict:
    """Labels for texts from a fine-tuned classifier (loom finetune classify), with probabilities."""
    if not texts or len(texts) > 100 or not all(isinstance(t, str) and t.strip() for t in texts):
        raise InputError("texts must be 1-100 non-empty strings", "send the texts to label as a list")
    backend = _opened(_name(model, "classifier"))
    if "classify" not in backend.info().capabilities:
        raise InputError(f"{model!r} is not a classifier", "name one from `loom models list` with task classify")
    return {"model": model, "results": backend.classify(texts)}


def summarize(text: str, sentences: int = 3) -> dict:
    """An extractive summary (the text's own most central sentences, in order; no model needed)."""
    from loom.apps.summarize import extractive

    if not 1 <= sentences <= 20:
        raise InputError(f"sentences must be 1-20, not {sentences}", "ask for a shorter summary")
    return {"summary": extractive(_text(text, "text", 200_000), n=sentences)}


def translate(text: str, to: str) -> dict:
    """Translate between Chinese and English (to: "zh" or "en") with the default chat model."""
    from loom import catalog
    from loom.apps import translate as t

    if to not in ("zh", "en"):
        raise InputError(f"to must be zh or en, not {to!r}", "translate into Chinese (zh) or English (en)")
    text = _text(text, "text", 20_000)
    t.check_pair(text, to)
    outcome = t.translate(text, to, _opened(catalog.chat_model_for(None, "translation")))
    return {"translation": outcome.text}


def calculator(expression: str) -> dict:
    """Evaluate arithmetic exactly as written: + - * / // % ** and parentheses, numbers, and the
    functions sqrt, log, log10, exp, sin, cos, tan, abs, round, min, max; constants pi and e."""
    expression = _text(expression, "expression", 500)
    try:
        tree = ast.parse(expression.replace("^", "**").replace("×", "*").replace("÷", "/"), mode="eval")
    except SyntaxError as e:
        raise InputError(f"cannot read {expression!r} as arithmetic", "write it like (3 + 4) * 2 / sqrt(16)") from e
    try:
        value = _evaluate(tree.body)
    except (ZeroDivisionError, OverflowError, ValueError) as e:
        raise InputError(f"{expression!r} has no value ({e})", "check for division by zero or a huge power") from e
    return {"expression": expression, "value": int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**53 else value}


BUILTINS: dict[str, Callable] = {f.__name__: f for f in (kb_search, kb_list, kg_neighbors, kg_path, recommend_for_user, similar_items,
                                                          classify, summarize, translate, calculator)}

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_FUNCTIONS = {"sqrt": math.sqrt, "log": math.log, "log10": math.log10, "exp": math.exp, "sin": math.sin, "cos": math.cos,
              "tan": math.tan, "abs": abs, "round": round, "min": min, "max": max}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _evaluate(node: ast.AST) -> float:
    """Numbers and the operators above only: no names but the listed ones, no attributes, no calls of
    anything else, exponents bounded (2 ** 10 ** 10 would run for ever)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _evaluate(node.operand)
        return value if isinstance(node.op, ast.UAdd) else -value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 1000 or abs(left) > 1e100):
            raise OverflowError("power too large")
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords
            and len(node.args) <= 10):
        return _FUNCTIONS[node.func.id](*[_evaluate(a) for a in node.args])
    raise InputError(f"{ast.unparse(node)!r} is not arithmetic", "use numbers, + - * / // % ** ( ) and sqrt, log, exp, sin, cos, pi")


def _name(value: str, what: str) -> str:
    from loom import home

    if not isinstance(value, str) or not home.is_name(value):
        raise InputError(f"{what} name {str(value)[:80]!r} is not valid", f"name a {what} as listed by Loom (letters, digits, - _ .)")
    return value


def _text(value: str, what: str, limit: int = 2000) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what} is empty", f"send the {what} as text")
    if len(value) > limit:
        raise InputError(f"{what} is {len(value):,} characters, over {limit:,}", f"shorten the {what}")
    return value


def _k(k: int) -> int:
    if not isinstance(k, int) or not 1 <= k <= _MAX_K:
        raise InputError(f"k must be 1-{_MAX_K}, not {k!r}", "ask for fewer results")
    return k


@functools.lru_cache(maxsize=4)
def _opened(name: str):
    """Models the tools use, loaded once per process (a classifier, the default chat model)."""
    from loom import registry

    return registry.open_backend(name, allow_paths=False)
