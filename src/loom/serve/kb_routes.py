"""/v1/kb: manage and search knowledge bases over HTTP (the support app's API; answering itself
goes through /v1/chat/completions with model "support:NAME")."""

from __future__ import annotations

from typing import Literal

import anyio
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateKB(_Body):
    name: str = Field(min_length=1, max_length=100)
    encoder: Literal["auto", "minilm", "e5"] = "auto"
    model: str | None = Field(None, description="chat model that writes answers; none = extractive")


class TextDocument(_Body):
    source: str = Field(min_length=1, max_length=1000, description="a name; its suffix picks the reader (.md, .csv FAQ ...)")
    text: str = Field(min_length=1)


class AddDocuments(_Body):
    documents: list[TextDocument] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list, description="files or folders on the server's disk")


class SearchKB(_Body):
    query: str = Field(min_length=1)
    k: int = Field(5, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"


def router(authorize, kbs: dict) -> APIRouter:
    from loom.apps.support.store import KnowledgeBase, list_kbs

    api = APIRouter(prefix="/v1/kb", dependencies=[Depends(authorize)])

    def kb(name: str) -> KnowledgeBase:
        if name not in kbs or not kbs[name].path.is_file():
            kbs[name] = KnowledgeBase(name)  # NotFoundError -> 404
        return kbs[name]

    def report_dict(r) -> dict:
        return {"added": r.added, "replaced": r.replaced, "unchanged": r.unchanged,
                "failed": [{"source": s, "error": e} for s, e in r.failed], "chunks": r.chunks}

    @api.get("")
    async def list_all():
        return {"object": "list", "data": [kb(n).stats() for n in list_kbs()]}

    @api.post("")
    async def create(body: CreateKB):
        created = KnowledgeBase.create(body.name, body.encoder)
        if body.model:
            created.set_meta("model", body.model)
        return created.stats()

    @api.get("/{name}")
    async def show(name: str):
        target = kb(name)
        return target.stats() | {"files": target.documents()}

    @api.delete("/{name}")
    async def remove(name: str):
        kb(name).remove()
        kbs.pop(name, None)
        return {"name": name, "deleted": True}

    @api.post("/{name}/documents")
    async def add(name: str, body: AddDocuments):
        target = kb(name)

        def work() -> dict:
            total = {"added": [], "replaced": [], "unchanged": [], "failed": [], "chunks": 0}
            reports = [target.add_text(d.source, d.text) for d in body.documents]
            if body.paths:
                reports.append(target.add_paths(body.paths, progress=False))
            for r in map(report_dict, reports):
                for key in total:
                    total[key] += r[key]
            return total

        return await anyio.to_thread.run_sync(work)

    @api.delete("/{name}/documents")
    async def delete_doc(name: str, source: str):
        return {"source": source, "removed_chunks": kb(name).delete_document(source)}

    @api.get("/{name}/chunks")
    async def chunks(name: str, source: str):
        return {"object": "list", "source": source, "data": kb(name).chunks_of(source)}

    @api.get("/{name}/handoffs")
    async def handoffs(name: str):
        return {"object": "list", "data": kb(name).handoffs()}

    @api.post("/{name}/search")
    async def search(name: str, body: SearchKB):
        from loom.apps.support.retrieve import search as run

        hits = await anyio.to_thread.run_sync(lambda: run(kb(name), body.query, body.k, body.mode))
        return {"object": "list", "data": [h.to_dict() for h in hits]}

    return api
