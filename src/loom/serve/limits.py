"""The request-body size limit, as plain ASGI middleware: a declared Content-Length over the limit is
answered 413 before the app runs; a chunked body that declares nothing is counted as it arrives and
stops with 413 at the first byte over, so no route ever buffers more than the limit. File uploads
(POST /v1/kb/NAME/files: scanned PDFs run to tens of MB) have their own, larger limit."""

from __future__ import annotations

import json
import re

UPLOADS = re.compile(r"^/v1/(kb/[^/]+/files|audio/(transcriptions|translations))/?$")


def _refusal(limit: int, size: str) -> tuple[dict, bytes]:
    message = f"request body is {size} bytes; the limit is {limit}"
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": "request_too_large"}}).encode()
    return {"type": "http.response.start", "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}, body


class BodyLimit:
    def __init__(self, app, max_bytes: int, upload_bytes: int | None = None) -> None:
        self.app, self.body_bytes, self.upload_bytes = app, max_bytes, upload_bytes or max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_bytes if UPLOADS.match(scope.get("path", "")) else self.body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > limit:
            start, body = _refusal(limit, declared)
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    from fastapi import HTTPException  # routes re-raise it as is (a 413, not a parse error)

                    raise HTTPException(413, f"request body is over the {limit}-byte limit")
            return message

        await self.app(scope, receive if declared.isdigit() else counted, send)
