"""Every error leaves the server in OpenAI's shape, {"error": {"message", "type", "param", "code"}},
with the status the official clients map to their exception classes."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from loom.backends.base import Overloaded, Unsupported
from loom.errors import LoomError, NotFoundError, StorageError

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param, self.headers = status, message, type_, code, param, headers


def body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def from_loom(e: LoomError) -> APIError:
    """Map the internal exception tree to HTTP."""
    from loom.backends.remote import RemoteError, RemoteTimeout
    from loom.serve.imports import Forbidden

    text = f"{e.message} ({e.hint})" if e.hint else e.message
    if isinstance(e, StorageError):
        return APIError(507, text, "server_error", "insufficient_storage")
    if isinstance(e, Forbidden):
        return APIError(403, text, "permission_error", "forbidden")
    if isinstance(e, NotFoundError):
        return APIError(404, text, code="model_not_found", param="model")
    if isinstance(e, Overloaded):
        return APIError(503, text, "server_error", getattr(e, "code", None) or "overloaded", headers={"Retry-After": "1"})
    if isinstance(e, RemoteTimeout):
        return APIError(504, text, "server_error", "upstream_timeout")
    if isinstance(e, RemoteError):
        return APIError(502, text, "server_error", "upstream_error")
    if isinstance(e, Unsupported):
        return APIError(400, text, code="unsupported_model", param="model")
    return APIError(400, text, code=getattr(e, "code", None) or "invalid_request", param=e.param)


def response(e: APIError) -> JSONResponse:
    return JSONResponse(body(e.message, e.type, e.code, e.param), status_code=e.status, headers=e.headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(_: Request, e: APIError):
        return response(e)

    @app.exception_handler(LoomError)
    async def _loom(_: Request, e: LoomError):
        return response(from_loom(e))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError):
        errors = e.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: {err.get('msg')}"
                            for err in errors[:5])
        return response(APIError(400, f"invalid request: {message}", param=param, code="invalid_value"))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, e: HTTPException):
        type_ = "invalid_request_error" if e.status_code < 500 else "server_error"
        code = "request_too_large" if e.status_code == 413 else None
        return response(APIError(e.status_code, str(e.detail), type_, code, headers=getattr(e, "headers", None)))

    @app.exception_handler(Exception)
    async def _crash(_: Request, e: Exception):
        log.exception("unhandled error")
        return response(APIError(500, f"internal error: {type(e).__name__}: {e}", "server_error"))
