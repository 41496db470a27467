"""Image parts in chat messages (OpenAI's `{"type": "image_url", "image_url": {"url": ...}}`).

    a text-only model      each image is read by OCR (loom.media) and its text takes the image's place
                           in the message, between clear markers; the response's `loom.images` says so
    a vision model         (a remote engine registered with `loom models add ... --vision`) gets the
                           parts unchanged, after the same checks

URLs: `data:image/...;base64,...` always; `http(s)://` only when the operator set
`media.fetch_image_urls` (a server must not fetch arbitrary URLs for its callers), and then with the
same byte limit and a timeout; any other scheme (file:, ftp:) is a 400. Every image passes
loom.media's checks (format from the bytes, size, pixels, a decodable file) before a model sees it."""

from __future__ import annotations

import base64
import binascii
import re
import time

import anyio

from loom.config import MediaConfig
from loom.errors import InputError

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[^;,]*)*)(;base64)?,", re.IGNORECASE)


def image_parts(messages) -> list[tuple[int, int, str]]:
    """(message index, part index, url) of every image part."""
    return [(i, j, part.image_url.url) for i, m in enumerate(messages) if isinstance(m.content, list)
            for j, part in enumerate(m.content) if part.type == "image_url"]


async def prepare(messages, media: MediaConfig, vision: bool) -> tuple[list[dict], dict]:
    """The internal messages with images resolved, and what happened to them (the `loom` extra)."""
    found = image_parts(messages)
    images: dict[tuple[int, int], bytes] = {}
    for i, j, url in found:
        images[(i, j)] = await fetch(url, media, f"messages[{i}].content[{j}].image_url.url")
    report = []
    out = []
    for i, m in enumerate(messages):
        internal = m.internal()
        if isinstance(m.content, list) and any(p.type == "image_url" for p in m.content):
            if vision:
                internal["content"] = [_vision_part(p, images.get((i, j))) for j, p in enumerate(m.content)]
                report += [{"message": i, "part": j, "handled": "passed to the model"} for (a, j) in images if a == i]
            else:
                pieces = []
                for j, part in enumerate(m.content):
                    if part.type == "text":
                        pieces.append(part.text)
                        continue
                    number = len(report) + 1
                    text, info = await anyio.to_thread.run_sync(read_text, images[(i, j)], f"image {number}", media)
                    pieces.append(_marked(number, text))
                    report.append({"message": i, "part": j, "handled": "ocr"} | info)
                internal["content"] = "\n\n".join(p for p in pieces if p)
        out.append(internal)
    extra = {"images": report}
    if report and not vision:
        extra["note"] = ("this model reads text only: the text in each image was read by OCR and given to it "
                         "between [image N] markers; it did not see the pictures")
    return out, extra


async def image_text(url: str, media: MediaConfig, param: str) -> tuple[str, dict]:
    """An image or PDF sent as a data URL (the writing routes' `image` field) -> its OCR text."""
    data = await fetch(url, media, param)
    text, info = await anyio.to_thread.run_sync(read_text, data, "the image", media)
    if not text.strip():
        raise InputError("OCR found no text in the image", "send a sharper image, or the text itself", param=param)
    return text, info


def _marked(number: int, text: str) -> str:
    if not text.strip():
        return f"[image {number}: OCR found no text in it; the model cannot see images]"
    return f"[image {number}: text read by OCR]\n{text}\n[end of image {number}]"


def read_text(data: bytes, name: str, media: MediaConfig) -> tuple[str, dict]:
    """OCR text of an image or PDF, and what reading it took."""
    from loom.media import read_pages

    started = time.perf_counter()
    pages = read_pages(data, name, limits=media)
    text = "\n\n".join(p.text for p in pages if p.text)
    return text, {"characters": len(text), "lines": sum(len(p.lines) for p in pages),
                  "pages": len(pages), "seconds": round(time.perf_counter() - started, 3)}


def _vision_part(part, data: bytes | None) -> dict:
    """A part as OpenAI sends it; fetched http(s) images go on as data URLs (the engine fetches nothing)."""
    if part.type == "text":
        return {"type": "text", "text": part.text}
    url = part.image_url.url
    if data is not None and not url.startswith("data:"):
        from loom.media.images import IMAGE_MIME, sniff

        url = f"data:{IMAGE_MIME.get(sniff(data) or '', 'application/pdf')};base64,{base64.b64encode(data).decode()}"
    return {"type": "image_url", "image_url": {"url": url} | ({"detail": part.image_url.detail} if part.image_url.detail else {})}


async def fetch(url: str, media: MediaConfig, param: str) -> bytes:
    """The image's bytes, checked (format, size, pixels, decodable) with the server's media limits."""
    from loom.media.images import check_bytes

    if url.startswith("data:"):
        data = _from_data_url(url, param, media)
    elif url.lower().startswith(("http://", "https://")):
        if not media.fetch_image_urls:
            raise InputError("this server does not fetch image URLs for its callers",
                             "send the image inline as a data URL (data:image/png;base64,...); an operator may set "
                             "media.fetch_image_urls in the serve config", param=param)
        data = await _download(url, media, param)
    else:
        scheme = url.split(":", 1)[0][:20] if ":" in url else "(none)"
        raise InputError(f"image URL scheme {scheme!r} is not accepted", "send a data: URL (base64)", param=param)
    try:
        kind = check_bytes(data, "the image", media)
        if kind == "pdf":
            from loom.media import inspect

            await anyio.to_thread.run_sync(inspect, data, "the PDF", media)
        else:
            from loom.media import decode_image

            await anyio.to_thread.run_sync(decode_image, data, "the image", media)
    except InputError as e:
        raise InputError(e.message, e.hint, param=param) from e
    return data


def _from_data_url(url: str, param: str, media: MediaConfig) -> bytes:
    match = _DATA_URL.match(url[:300])
    if not match or not match.group(3):
        raise InputError("the image data URL is not base64 (data:image/png;base64,...)", "encode the image's bytes as base64",
                         param=param)
    payload = url[match.end():]
    if len(payload) > media.max_bytes * 4 // 3 + 4:
        raise InputError(f"the image is over the {media.max_bytes:,}-byte limit", "send a smaller image", param=param)
    try:
        return base64.b64decode(payload.strip(), validate=False)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"the image's base64 is damaged ({e})", "encode the image's bytes as base64 again", param=param) from e


async def _download(url: str, media: MediaConfig, param: str) -> bytes:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=20, follow_redirects=True, max_redirects=3) as client:
            async with client.stream("GET", url) as response:
                response.raise_for_status()
                data = bytearray()
                async for piece in response.aiter_bytes():
                    data += piece
                    if len(data) > media.max_bytes:
                        raise InputError(f"the image at the URL is over the {media.max_bytes:,}-byte limit", "send a smaller image",
                                         param=param)
                return bytes(data)
    except httpx.HTTPError as e:
        raise InputError(f"could not fetch the image URL ({type(e).__name__}: {str(e)[:200]})", "check the URL, or send the "
                         "image inline as a data URL", param=param) from e
