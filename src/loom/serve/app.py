"""The FastAPI app: OpenAI-compatible routes over the backend registry.

    app = create_app(ServeConfig(preload=["smollm2"]))     # run with uvicorn

Routes only parse the wire request, ask the registry for a backend and shape its answer; the
backends do the work. Models load on first use (or at startup with `preload`)."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from pathlib import Path

import anyio
import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

import loom.apps.agent.agent  # noqa: F401  registers the `agent:NAME` models
import loom.apps.support.backend  # noqa: F401  registers the `support:NAME` models
from loom import catalog, registry
from loom.backends.base import Backend, Chunk
from loom.config import ServeConfig
from loom.errors import LoomError, NotFoundError, StorageError
from loom.serve import (agent_routes, audio_routes, errors, images, kb_routes, keys_routes, kg_routes, recommend_routes, runs_routes,
                        train_routes, writing_routes)
from loom.serve.auth import Key, KeyStore, RateLimiter
from loom.serve.imports import import_roots
from loom.serve.limits import BodyLimit
from loom.serve.metrics import Metrics
from loom.serve.schema import (
    ChatRequest,
    ClassifyRequest,
    CompletionRequest,
    EmbeddingRequest,
)
from loom.serve.streaming import collect_choices, shape_calls, shape_logprobs, sse_events

log = logging.getLogger(__name__)


class Server:
    """Loaded backends, keys, limits and metrics shared by the routes."""

    def __init__(self, settings: ServeConfig) -> None:
        from loom import media

        self.settings = settings
        media.configure(settings.media)  # limits and OCR engine for uploads, KB files and chat images
        self.backends: dict[str, Backend] = {}
        self.kbs: dict = {}  # knowledge bases opened by /v1/kb (each caches its dense matrix)
        self._loading: dict[str, asyncio.Lock] = {}
        self.keys = KeyStore()
        self.import_roots = import_roots(settings.kb_import_dirs)  # where admin keys may import server files from
        self.limiter = RateLimiter()
        self.metrics = Metrics(self.backends)
        self.jobs = train_routes.Jobs()  # fine-tunes started over HTTP (child processes)
        self._keys_checked, self._keys_exist = 0.0, False

    async def backend(self, name: str, trusted: bool = False) -> Backend:
        """The loaded backend for a model name from a request; `trusted` (the operator's --preload list)
        may also name a folder or file, which a client never can."""
        if name in self.backends:
            return self.backends[name]
        lock = self._loading.setdefault(name, asyncio.Lock())
        try:
            async with lock:
                if name not in self.backends:
                    s = self.settings
                    shared = registry.Shared(self._lend, s.apps.model_dump())
                    self.backends[name] = await anyio.to_thread.run_sync(lambda: registry.open_backend(
                        name, engine=s.engine, max_batch=s.max_batch, max_queue=s.max_queue, allow_paths=trusted,
                        device=s.device, isolate=s.isolate_engines, shared=shared))
        finally:
            if name not in self.backends:
                self._loading.pop(name, None)  # unknown names (404s) must not pile up locks
        return self.backends[name]

    def _lend(self, name: str) -> Backend:
        """For an app backend being opened in a worker thread (support:KB, agent:NAME): the chat model it
        names, as this server's one loaded copy, shared with plain chat requests."""
        return anyio.from_thread.run(self.backend, name)

    def keys_required(self) -> bool:
        now = time.monotonic()
        if now - self._keys_checked > 1.0:  # re-read at most once a second: keys made by the CLI apply quickly
            self._keys_exist, self._keys_checked = self.keys.any_active(), now
        return self._keys_exist

    def is_admin(self, key: Key | None) -> bool:
        """May manage keys and delete knowledge bases: an admin key, or anyone on a server without keys."""
        return not self.keys_required() or (key is not None and key.admin)

    def forget_key_state(self) -> None:
        """Keys changed through the API: re-read at the next request instead of within a second."""
        self._keys_checked = 0.0

    def account(self, key: Key | None, endpoint: str, model: str, prompt_tokens: int, completion_tokens: int,
                audio_seconds: float = 0.0) -> None:
        self.metrics.prompt_tokens.labels(model).inc(prompt_tokens)
        self.metrics.completion_tokens.labels(model).inc(completion_tokens)
        if key is not None:
            self.limiter.spend(key, prompt_tokens + completion_tokens)
            try:
                self.keys.record(key.id, endpoint, model, prompt_tokens, completion_tokens, audio_seconds)
            except StorageError as e:  # the answer is already made: lose the usage row, not the answer
                log.warning("usage not recorded: %s", e.message)


def create_app(settings: ServeConfig | None = None, announce=None, preload_paths: list[str] | tuple = ()) -> FastAPI:
    """announce(text), if given, hears startup progress (the CLI prints it). preload_paths: model
    folders or .gguf files the operator named on the command line (settings.preload holds names only)."""
    server = Server(settings or ServeConfig())

    async def startup() -> None:
        for name, trusted in [(n, False) for n in server.settings.preload] + [(p, True) for p in preload_paths]:
            started = time.perf_counter()
            await server.backend(name, trusted=trusted)
            if announce:
                announce(f"loaded {name} in {time.perf_counter() - started:.1f} s")
        if announce:
            announce("ready")

    app = FastAPI(title="Loom", version="0.1", summary="OpenAI-compatible API over local and remote models",
                  docs_url=None, redoc_url=None, openapi_url=None,  # served below, behind a key once keys exist
                  on_startup=[startup], on_shutdown=[lambda: [b.close() for b in server.backends.values()], server.jobs.close])
    app.state.server = server
    errors.install(app)
    # Under the metrics middleware below (which sees its 413s); holds for chunked bodies too.
    app.add_middleware(BodyLimit, max_bytes=server.settings.max_body_bytes, upload_bytes=server.settings.max_upload_bytes)

    @app.middleware("http")
    async def measure(request: Request, call_next):
        start = time.perf_counter()
        reply = await call_next(request)
        # Label by route template (/v1/kb/{name}/search), never the raw path: scanners and KB names
        # must not grow the metric set without bound.
        endpoint = getattr(request.scope.get("route"), "path", "unmatched")
        server.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
        server.metrics.requests.labels(endpoint, str(reply.status_code)).inc()
        return reply

    async def authorize(request: Request) -> Key | None:
        if not server.keys_required():
            return None
        header = request.headers.get("authorization", "")
        presented = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not presented:
            raise errors.APIError(401, "missing API key: send 'Authorization: Bearer <key>'", "authentication_error", "invalid_api_key")
        key = await anyio.to_thread.run_sync(server.keys.check, presented)
        if key is None:
            raise errors.APIError(401, "invalid or revoked API key", "authentication_error", "invalid_api_key")
        wait = server.limiter.admit(key)
        if wait is not None:
            server.metrics.rate_limited.inc()
            raise errors.APIError(429, f"rate limit reached for key {key.name!r} (rpm {key.rpm}, tpm {key.tpm}); retry in {wait:.0f} s",
                                  "rate_limit_error", "rate_limit_exceeded", headers={"Retry-After": str(max(1, round(wait)))})
        return key

    async def authorize_docs(request: Request) -> None:
        """The API description names every route and field: keyed like the API (serve config api_docs)."""
        if server.settings.api_docs == "off":
            raise errors.APIError(404, "the API description is switched off on this server", code="not_found")
        if server.settings.api_docs == "keyed":
            await authorize(request)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(authorize_docs)])
    async def openapi():
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(authorize_docs)])
    async def api_docs():
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title="Loom API")

    app.include_router(kb_routes.router(authorize, server))
    app.include_router(writing_routes.router(authorize, server))
    app.include_router(runs_routes.router(authorize))
    app.include_router(runs_routes.evals_router(authorize))
    app.include_router(keys_routes.router(authorize, server))
    app.include_router(train_routes.router(authorize, server))
    app.include_router(recommend_routes.router(authorize))
    app.include_router(kg_routes.router(authorize, server))
    app.include_router(audio_routes.router(authorize, server))
    app.include_router(agent_routes.router(authorize, server))

    web = Path(__file__).parent / "web"
    app.mount("/ui", StaticFiles(directory=web), name="ui")  # the pages only call the /v1 API below

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(web / "index.html")

    @app.get("/health")
    async def health():
        """Up, the models loaded, and each local engine: which one, its process, self-test and restarts.
        "degraded" when an engine gave up restarting (its model answers 503 with the reason)."""
        engines = {name: report for name, b in sorted(server.backends.items()) if (report := b.health())}
        failed = any(e.get("state") == "failed" for e in engines.values())
        return {"status": "degraded" if failed else "ok", "loaded_models": sorted(server.backends), "engines": engines}

    @app.get("/metrics", dependencies=[Depends(authorize)])
    async def metrics():
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models(key: Key | None = Depends(authorize)):
        from loom.apps.agent.agent import names as agent_names
        from loom.apps.support.store import list_kbs

        entries = [e for e in catalog.list_models() if not e.path.startswith("(")]
        default = catalog.default_chat_model()  # `loom models default NAME`; pages preselect it
        models = [{"id": e.name, "object": "model", "created": 0, "owned_by": "loom", "backend": e.backend, "task": e.task}
                  | ({"default": True} if e.name == default else {}) for e in entries]
        models += [{"id": f"support:{kb}", "object": "model", "created": 0, "owned_by": "loom", "backend": "support",
                    "task": "generate"} for kb in list_kbs()]
        models += [{"id": f"agent:{name}", "object": "model", "created": 0, "owned_by": "loom", "backend": "agent",
                    "task": "generate"} for name in agent_names() if key is None or key.may_use(f"agent:{name}")]
        try:  # the name OpenAI clients send for speech to text, when a transcription model is installed
            models.append({"id": catalog.TRANSCRIPTION_ALIAS, "object": "model", "created": 0, "owned_by": "loom",
                           "backend": "whisper", "task": "transcribe", "means": catalog.default_transcription_model()})
        except NotFoundError:
            pass
        from loom.model.pull import PULLABLE, pulled

        # not OpenAI's: models `loom models pull` can install here, for the pages' pickers to offer with the command
        pullable = [{"id": name, "task": spec.task, "size_mb": round(spec.size / 1e6), "description": spec.description,
                     "command": f"loom models pull {name}"} for name, spec in PULLABLE.items() if pulled(name) is None]
        return {"object": "list", "data": models, "pullable": pullable}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request, key: Key | None = Depends(authorize)):
        return await _generate(server, request, key, body, "chat.completion", "/v1/chat/completions")

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request, key: Key | None = Depends(authorize)):
        return await _generate(server, request, key, body, "text_completion", "/v1/completions")

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest, key: Key | None = Depends(authorize)):
        backend = await server.backend(body.model)
        try:
            inputs = body.inputs()
        except ValueError as e:
            raise errors.APIError(400, str(e), param="input") from e
        result = await anyio.to_thread.run_sync(lambda: backend.embed(inputs, query=body.input_type == "query"))
        data = []
        for i, vector in enumerate(result.vectors):
            vec = np.asarray(vector, dtype=np.float32)
            if body.dimensions is not None:
                if body.dimensions > vec.size:
                    raise errors.APIError(400, f"dimensions={body.dimensions} but model {body.model!r} gives {vec.size}", param="dimensions")
                vec = vec[: body.dimensions] / max(float(np.linalg.norm(vec[: body.dimensions])), 1e-12)
            # base64: little-endian float32 bytes, what the openai client decodes by default.
            embedding = base64.b64encode(vec.astype("<f4").tobytes()).decode() if body.encoding_format == "base64" else vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        server.account(key, "/v1/embeddings", body.model, result.prompt_tokens, 0)
        return {"object": "list", "data": data, "model": body.model,
                "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}}

    @app.post("/v1/classify")
    async def classify(body: ClassifyRequest, key: Key | None = Depends(authorize)):
        backend = await server.backend(body.model)
        results = await anyio.to_thread.run_sync(backend.classify, body.texts(), body.explain)
        tokens = sum(backend.count_tokens(t) for t in body.texts())
        server.account(key, "/v1/classify", body.model, tokens, 0)
        return {"object": "list", "model": body.model, "data": [{"index": i} | r for i, r in enumerate(results)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    return app


async def _generate(server: Server, request: Request, key: Key | None, body, kind: str, endpoint: str):
    if key is not None and not key.may_use(body.model):  # before anything loads: an agent runs tools on this server's data
        raise errors.APIError(403, f"this key may not use {body.model!r}", "permission_error", "model_not_permitted", "model")
    backend = await server.backend(body.model)
    started = time.perf_counter()
    messages, top_extra = None, None
    if kind == "chat.completion" and images.image_parts(body.messages):
        messages, top_extra = await images.prepare(body.messages, server.settings.media, _reads_images(body.model))
    streams = [backend.astream(body.internal(server.settings.default_max_tokens, i, messages) if messages
                               else body.internal(server.settings.default_max_tokens, i)) for i in range(body.n)]
    # Pull each choice's first chunk now, so bad input (e.g. a prompt over the context) is a clean 4xx
    # instead of an error in the middle of a 200 stream.
    firsts: list[Chunk] = []
    try:
        for s in streams:
            firsts.append(await anext(s))
    except BaseException:
        for s in streams:
            await s.aclose()
        raise
    server.metrics.ttft.labels(body.model).observe(time.perf_counter() - started)
    meta = {"id": f"{'chatcmpl' if kind.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
            "model": body.model}

    def done(prompt_tokens: int, completion_tokens: int) -> None:
        server.account(key, endpoint, body.model, prompt_tokens, completion_tokens)

    if body.stream:
        events = sse_events(streams, firsts, kind, meta, body.include_usage, done, top_extra)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    task = asyncio.ensure_future(collect_choices(streams, firsts))
    while not task.done():  # a client that hangs up stops its generation
        await asyncio.wait([task], timeout=0.25)
        if not task.done() and await request.is_disconnected():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for s in streams:
                await s.aclose()
            return Response(status_code=499)
    choices = task.result()
    prompt_tokens = choices[0]["prompt_tokens"]
    completion_tokens = sum(c["completion_tokens"] for c in choices)
    done(prompt_tokens, completion_tokens)
    if kind == "chat.completion":
        shaped = [{"index": i, "message": _message(c), "finish_reason": c["finish_reason"],
                   "logprobs": shape_logprobs(c["logprobs"], True)} | ({"loom": c["extra"]} if c["extra"] else {})
                  for i, c in enumerate(choices)]
    else:
        prefix = body.prompt if getattr(body, "echo", False) and isinstance(body.prompt, str) else ""
        shaped = [{"index": i, "text": prefix + c["text"], "finish_reason": c["finish_reason"],
                   "logprobs": shape_logprobs(c["logprobs"], False, len(prefix))} for i, c in enumerate(choices)]
    return JSONResponse(meta | {"object": kind, "choices": shaped, "usage": {
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}}
        | ({"loom": top_extra} if top_extra else {}))


def _reads_images(model: str) -> bool:
    """A remote engine registered with --vision gets image parts as they are; everything else, their OCR text."""
    try:
        return catalog.get(model).vision
    except LoomError:
        return False


def _message(choice: dict) -> dict:
    """The assistant message of a collected choice: content (null when the reply is only tool calls),
    tool calls, and a support answer's citations."""
    message = {"role": "assistant", "content": choice["text"] or (None if choice["tool_calls"] else "")}
    if choice["tool_calls"]:
        message["tool_calls"] = shape_calls(choice["tool_calls"])
    return message | _citations(choice["extra"])


def _citations(extra: dict | None) -> dict:
    """Support answers carry their sources as a structured field on the message."""
    return {"citations": extra["citations"]} if extra and "citations" in extra else {}
