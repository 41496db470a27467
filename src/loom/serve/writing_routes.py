"""/v1/summarize, /v1/translate, /v1/write, /v1/report: the writing applications over HTTP.

Generated text can stream (`"stream": true`) as server-sent events: `data: {"text": "..."}` per
piece, then one `data: {"done": true, ...}` with the final result, then `data: [DONE]`."""

from __future__ import annotations

import json
from typing import Literal

import anyio
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _FromImage(_Body):
    """`input` as text, or `image`: a data URL of an image or scanned PDF whose text (OCR) is the input."""

    input: str = Field("", description="the text")
    image: str | None = Field(None, description="instead of input: data:image/png;base64,... (or a PDF), read by OCR")

    @model_validator(mode="after")
    def _one_source(self):
        if not self.input and not self.image:
            raise ValueError("send the text as input, or an image (a data URL) to read it from")
        if self.input and self.image:
            raise ValueError("send input or image, not both")
        return self


class SummarizeBody(_FromImage):
    mode: Literal["extractive", "abstractive"] = "extractive"
    method: Literal["centroid", "textrank", "lead"] = "centroid"
    sentences: int | None = Field(None, ge=1, le=100)
    ratio: float | None = Field(None, gt=0, le=1)
    model: str | None = None
    stream: bool = False


class TranslateBody(_FromImage):
    to: str = Field(description="zh | en")
    glossary: dict[str, str] = Field(default_factory=dict)
    model: str | None = None
    stream: bool = False


class WriteBody(_Body):
    kind: str
    topic: str = Field(min_length=1)
    tone: str | None = None
    length: str = "short"
    keywords: list[str] = Field(default_factory=list)
    retries: int = Field(2, ge=0, le=10)
    seed: int = 0
    model: str | None = None
    stream: bool = False


class ReportBody(_Body):
    data: list[dict] = Field(min_length=1, description="rows as objects")
    title: str = "Data report"
    model: str | None = None


def _sse(pieces, final) -> StreamingResponse:
    async def events():
        async for piece in pieces:
            yield f"data: {json.dumps({'text': piece}, ensure_ascii=False)}\n\n"
        yield f"data: {json.dumps({'done': True} | final(), ensure_ascii=False)}\n\ndata: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def _iterate(sync_iterable):
    """A sync generator driven from a worker thread, one item per hop."""
    it = iter(sync_iterable)
    end = object()
    while (item := await anyio.to_thread.run_sync(next, it, end)) is not end:
        yield item


async def _respond(items, stream: bool, shape):
    """`items` (a sync generator) yields text pieces, then one result object; shape(result) is the
    JSON answer. Streams the pieces as SSE, or drains them and answers once."""
    result: dict = {}

    async def pieces():
        async for item in _iterate(items):
            if isinstance(item, str):
                yield item
            else:
                result.update(shape(item))

    if stream:
        return _sse(pieces(), lambda: result)
    async for _ in pieces():
        pass
    return result


def _joined(pieces):
    """Pieces, then their concatenation as the result."""
    seen = []
    for piece in pieces:
        seen.append(piece)
        yield piece
    yield {"text": "".join(seen).strip()}


def router(authorize, server) -> APIRouter:
    from loom import catalog

    api = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])

    async def chat_backend(model: str | None, app: str, purpose: str):
        """The request's model, else the serve config's for this app (apps.APP), else the default chat model."""
        return await server.backend(catalog.chat_model_for(model or getattr(server.settings.apps, app), purpose))

    async def read_image(body) -> dict:
        """Fills body.input from body.image (OCR); returns what was read, for the response."""
        if not body.image:
            return {}
        from loom.serve.images import image_text

        body.input, info = await image_text(body.image, server.settings.media, "image")
        return {"ocr": info | {"text": body.input}}

    @api.post("/summarize")
    async def summarize(body: SummarizeBody):
        from loom.apps import summarize as s

        read = await read_image(body)
        if body.mode == "extractive":
            summary = await anyio.to_thread.run_sync(lambda: s.extractive(body.input, body.sentences, body.ratio, body.method))
            return {"summary": summary, "mode": "extractive", "method": body.method} | read
        backend = await chat_backend(body.model, "summarize", "abstractive summarisation")
        s.split(body.input)  # empty or binary input: a 400 before any streaming starts
        return await _respond(_joined(s.abstractive(body.input, backend, body.sentences, body.ratio)), body.stream,
                              lambda done: {"summary": done["text"], "mode": "abstractive", "model": backend.name} | read)

    @api.post("/translate")
    async def translate(body: TranslateBody):
        from loom.apps import translate as t

        read = await read_image(body)
        t.check_pair(body.input, body.to)
        backend = await chat_backend(body.model, "translate", "translation")
        return await _respond(t.translate_stream(body.input, body.to, backend, body.glossary), body.stream, lambda o: {
            "translation": o.text, "glossary_checked": o.glossary_checked,
            "glossary_missing": [{"source": src, "target": dst} for src, dst in o.glossary_missing]} | read)

    @api.post("/write")
    async def write(body: WriteBody):
        from loom.apps import write as w

        w.prompt(body.kind, body.topic, body.tone, w.target_length(body.length), [], "en")  # 400 on bad kind/length
        backend = await chat_backend(body.model, "write", "content generation")
        drafts = w.write(body.kind, body.topic, backend, body.tone, body.length, body.keywords, body.retries, body.seed)
        return await _respond(drafts, body.stream, lambda d: {
            "text": d.text, "drafts": d.drafts, "best_draft": d.attempt, "problems": d.problems, "ok": not d.problems})

    @api.post("/report")
    async def report(body: ReportBody):
        from loom.apps import report as r

        rep = r.compute_facts(body.title, *r.records_to_table(body.data))
        rep.narrative = r.template_narrative(rep)
        if body.model:
            backend = await server.backend(body.model)
            await anyio.to_thread.run_sync(r.apply_model_narrative, rep, backend)
        await anyio.to_thread.run_sync(r.charts, rep)
        return {"title": rep.title, "rows": rep.rows, "facts": rep.facts, "narrative": rep.narrative,
                "narrative_source": rep.narrative_source, "html": r.render_html(rep)}

    return api
