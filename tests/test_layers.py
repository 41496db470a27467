"""The house rules for src/loom, read from the source with `ast` (imports inside functions count too:
a lazy import still ties two modules together):

1. no import circle anywhere;
2. no import from a lower layer to a higher one. The layers, lowest first, are written once, in
   LAYERS below; docs/architecture.md says what each holds. Data flows up: a stage may use any
   stage below it, never one above."""

from __future__ import annotations

import ast

from conftest import REPO


def _graph() -> dict[str, set[str]]:
    root = REPO / "src"
    modules = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rsplit(".", 1)[0] if "." in target else ""
                if target and target != module:
                    graph[module].add(target)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


LAYERS = [
    ("ground", ["loom", "loom.errors", "loom.home", "loom.atomic", "loom.config", "loom.runtime", "loom.text", "loom.plotting", "loom.catalog"]),
    ("data", ["loom.data", "loom.datasets", "loom.media"]),
    ("tokenizer", ["loom.tokenizer"]),
    ("model", ["loom.model"]),
    ("train", ["loom.train", "loom.classify"]),
    ("eval", ["loom.eval"]),
    ("backends", ["loom.backends"]),
    ("registry", ["loom.registry"]),
    ("apps", ["loom.apps"]),
    ("serve", ["loom.serve"]),
    ("cli", ["loom.cli", "loom.__main__"]),
]


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix naming `module` (a module must belong to a layer)."""
    best, length = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = i, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS in tests/test_layers.py"
    return best


def upward(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
            for m, deps in sorted(graph.items()) for d in sorted(deps) if layer_of(d) > layer_of(m)]


def test_no_import_circles():
    assert _circles(_graph()) == []


def test_no_import_runs_up_a_layer():
    assert upward(_graph()) == []


def test_the_checks_see_a_circle_and_an_upward_import():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    planted = _graph()
    planted["loom.model.decode"].add("loom.backends.base")  # what the old decode <-> sequence pair did
    planted["loom.backends.base"].add("loom.model.decode")
    assert ["loom.backends.base", "loom.model.decode"] in _circles(planted)
    assert upward(planted) == ["loom.model.decode (model) imports loom.backends.base (backends)"]
