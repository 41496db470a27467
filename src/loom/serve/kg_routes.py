"""/v1/kg: knowledge graphs over HTTP. Graphs are named, never pathed; documents arrive as text in
the request (or come from the knowledge base a graph is built from). Deleting a whole graph needs an
admin key once keys exist, as deleting a knowledge base does."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from loom.apps.kg import build, query
from loom.apps.kg.store import Graph, list_names


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KGDocument(_Body):
    source: str = Field(min_length=1, max_length=1000)
    text: str = Field(min_length=1, max_length=2_000_000)


class AddKGDocuments(_Body):
    documents: list[KGDocument] = Field(min_length=1, max_length=1000)


class BuildKG(_Body):
    extractor: str = Field("rules", description="rules (the model tiers run from the CLI, where a model is chosen)")


def router(authorize, server) -> APIRouter:
    from loom.serve.imports import Forbidden

    api = APIRouter(prefix="/v1/kg", dependencies=[Depends(authorize)])

    @api.get("")
    def graphs():
        return {"object": "list", "data": [Graph.open(n).stats() for n in list_names()]}

    @api.get("/{name}")
    def stats(name: str):
        return Graph.open(name).stats()

    @api.post("/{name}/build")
    async def build_from_kb(name: str, body: BuildKG):
        """(Re)build the graph of knowledge base NAME from its documents (rules tier)."""
        if body.extractor != "rules":
            from loom.errors import InputError

            raise InputError("over HTTP graphs are built with the rules extractor", "run `loom kg build NAME --extractor model` for the model tier")
        return await anyio.to_thread.run_sync(build.build_from_kb, name, "rules")

    @api.post("/{name}/documents")
    async def add(name: str, body: AddKGDocuments):
        def work():
            graph = Graph.open(name, create=True)
            return [build.add_document(graph, d.source, [d.text]) for d in body.documents]

        return {"added": await anyio.to_thread.run_sync(work), **Graph.open(name).stats()}

    @api.delete("/{name}/documents")
    def remove_document(name: str, source: str):
        if not Graph.open(name).remove_document(source):
            from loom.errors import NotFoundError

            raise NotFoundError(f"{source!r} is not in graph {name!r}", "see GET /v1/kg/NAME")
        return {"name": name, "removed": source, **Graph.open(name).stats()}

    @api.delete("/{name}")
    def remove(name: str, key=Depends(authorize)):
        if not server.is_admin(key):
            raise Forbidden("deleting a knowledge graph needs an admin key", "ask an admin (loom keys create NAME --admin)")
        Graph.open(name).remove()
        return {"name": name, "deleted": True}

    @api.get("/{name}/entities/{entity}")
    def show(name: str, entity: str):
        return query.show(Graph.open(name), entity)

    @api.get("/{name}/neighbors")
    def neighbors(name: str, entity: str, hops: int = 1):
        return query.neighbors(Graph.open(name), entity, hops)

    @api.get("/{name}/path")
    def path(name: str, a: str, b: str):
        return query.path(Graph.open(name), a, b)

    @api.get("/{name}/search")
    def search(name: str, q: str, limit: int = 20):
        return {"object": "list", "data": query.search(Graph.open(name), q, max(1, min(limit, 200)))}

    return api
