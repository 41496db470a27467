"""/v1/kb: manage and search knowledge bases over HTTP (the support app's API; answering itself
goes through /v1/chat/completions with model "support:NAME").

Content arrives from the client: text (`documents`) or file bytes (a multipart upload to
/v1/kb/NAME/files, so PDF and .docx work too). `paths` on the server's disk are read only for admin
keys and only inside the folders the operator allowed (`loom serve --kb-import-dir DIR`); see
loom.serve.imports. Deleting a whole knowledge base needs an admin key once keys exist."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import anyio
from fastapi import APIRouter, Depends, File, UploadFile
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
    paths: list[str] = Field(default_factory=list, description="files or folders on the server's disk: admin keys "
                             "only, inside a folder named by `loom serve --kb-import-dir`")


class SearchKB(_Body):
    query: str = Field(min_length=1)
    k: int = Field(5, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"


def router(authorize, server) -> APIRouter:
    from loom import catalog
    from loom.data.readers import DOC_TYPES, FAQ_TYPES, MAX_FILE_BYTES, check_content
    from loom.apps.support.store import KnowledgeBase, list_kbs
    from loom.errors import InputError
    from loom.serve.imports import Forbidden, allowed_files, read_inside

    kbs = server.kbs
    api = APIRouter(prefix="/v1/kb", dependencies=[Depends(authorize)])

    def kb(name: str) -> KnowledgeBase:
        if name not in kbs or not kbs[name].path.is_file():
            kbs[name] = KnowledgeBase(name)  # NotFoundError -> 404
        return kbs[name]

    def public_stats(target: KnowledgeBase) -> dict:
        return {k: v for k, v in target.stats().items() if k != "path"}  # the server's folders stay private

    def report_dict(r) -> dict:
        return {"added": r.added, "replaced": r.replaced, "unchanged": r.unchanged,
                "failed": [{"source": s, "error": e} for s, e in r.failed], "chunks": r.chunks}

    def merged(reports) -> dict:
        total = {"added": [], "replaced": [], "unchanged": [], "failed": [], "chunks": 0}
        for r in map(report_dict, reports):
            for key in total:
                total[key] += r[key]
        return total

    @api.get("")
    async def list_all():
        return {"object": "list", "data": [public_stats(kb(n)) for n in list_kbs()]}

    @api.post("")
    async def create(body: CreateKB):
        if body.model:  # a model name the server knows; never a path a client picks
            await anyio.to_thread.run_sync(lambda: catalog.resolve(body.model, allow_paths=False))
        created = KnowledgeBase.create(body.name, body.encoder)
        if body.model:
            created.set_meta("model", body.model)
        return public_stats(created)

    @api.get("/{name}")
    async def show(name: str):
        target = kb(name)
        return public_stats(target) | {"files": target.documents()}

    @api.delete("/{name}")
    async def remove(name: str, key=Depends(authorize)):
        if not server.is_admin(key):
            raise Forbidden("deleting a knowledge base needs an admin key", "ask an admin (loom keys create NAME --admin)")
        kb(name).remove()
        kbs.pop(name, None)
        return {"name": name, "deleted": True}

    @api.post("/{name}/documents")
    async def add(name: str, body: AddDocuments, key=Depends(authorize)):
        target = kb(name)
        files, skipped = [], []
        if body.paths:
            if key is None or not key.admin:
                raise Forbidden("importing files from the server's disk needs an admin key",
                                "send the content instead (documents, or an upload to /v1/kb/NAME/files)")
            files, skipped = allowed_files(body.paths, server.import_roots, DOC_TYPES | FAQ_TYPES)

        def work() -> dict:
            reports = [target.add_text(d.source, d.text) for d in body.documents]
            for f in files:  # read once, safely (a link swapped in after the check cannot lead out), then ingested
                try:
                    reports.append(target.add_bytes(str(f), read_inside(f, server.import_roots, MAX_FILE_BYTES)))
                except (Forbidden, InputError) as e:
                    reports.append(_failed(str(f), e.message))
            total = merged(reports)
            total["failed"] += [{"source": s, "error": e} for s, e in skipped]
            return total

        return await anyio.to_thread.run_sync(work)

    @api.post("/{name}/files")
    async def upload(name: str, files: list[UploadFile] = File(..., description="documents (.txt .md .html .pdf .docx), "
                                                                                 "images and scans (.png .jpg .webp .tiff .bmp .gif, "
                                                                                 "image-only PDFs: read by OCR) or FAQ tables (.csv .jsonl)")):
        target = kb(name)
        received = []
        for f in files:
            data = await f.read(MAX_FILE_BYTES + 1)
            received.append((_source_name(f.filename), data))

        def check() -> None:
            """A damaged, empty, oversized or mislabelled file is a 400 before anything is written."""
            for source, data in received:
                if len(data) <= MAX_FILE_BYTES and Path(source).suffix.lower() in DOC_TYPES | FAQ_TYPES:
                    check_content(source, data)

        await anyio.to_thread.run_sync(check)

        def work() -> dict:
            reports = []
            for source, data in received:
                if len(data) > MAX_FILE_BYTES:
                    reports.append(_failed(source, f"over the {MAX_FILE_BYTES:,}-byte limit"))
                else:
                    reports.append(target.add_bytes(source, data))
            return merged(reports)

        return await anyio.to_thread.run_sync(work)

    @api.get("/{name}/pages")
    async def page_image(name: str, source: str, page: int):
        """A scanned page's JPEG preview, to show a cited passage where it is on the page."""
        from fastapi.responses import Response

        jpeg = await anyio.to_thread.run_sync(lambda: kb(name).page_image(source, page))
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

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


def _source_name(filename: str | None) -> str:
    """An uploaded file's name as a label: its last component, without control characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()[:200]
    return name if name not in ("", ".", "..") else "upload.txt"


def _failed(source: str, why: str):
    from loom.apps.support.store import AddReport

    return AddReport(failed=[(source, why)])
