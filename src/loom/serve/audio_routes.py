"""/v1/audio/transcriptions, /v1/audio/translations and /v1/audio/speech in OpenAI's shape (what the official clients'
`audio.transcriptions.create` and `audio.translations.create` send): a multipart form with `file`,
`model`, `language`, `prompt`, `temperature`, `response_format` (json, text, srt, vtt, verbose_json),
`timestamp_granularities[]` (segment, word) and `stream`.

The upload is checked before any model runs (empty, oversized, not audio, truncated, too long: 400),
usage is recorded in seconds of audio beside the tokens of the text, and `stream=true` sends
`transcript.text.delta` events as each stretch of speech is recognised, then `transcript.text.done`."""

from __future__ import annotations

import json
import logging
import math
from typing import Literal

import anyio
import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from loom import catalog
from loom.apps import speech
from loom.backends.base import Segment, Transcribe
from loom.errors import InputError
from loom.serve import errors
from loom.text import glue

log = logging.getLogger(__name__)

_LANGUAGE_NAMES = {"zh": "chinese", "en": "english", "ja": "japanese", "ko": "korean", "fr": "french", "de": "german",
                   "es": "spanish", "ru": "russian", "it": "italian", "pt": "portuguese", "ar": "arabic", "hi": "hindi",
                   "vi": "vietnamese", "th": "thai", "id": "indonesian", "tr": "turkish", "nl": "dutch", "yue": "cantonese"}
_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
_FIELDS = {"file", "model", "language", "prompt", "temperature", "response_format", "timestamp_granularities[]",
           "timestamp_granularities", "stream", "chunking_strategy", "include[]", "keep_traditional"}


def router(authorize, server) -> APIRouter:
    api = APIRouter(prefix="/v1/audio")

    @api.post("/transcriptions")
    async def transcriptions(request: Request, key=Depends(authorize)):
        return await _run(server, request, key, "transcribe")

    @api.post("/translations")
    async def translations(request: Request, key=Depends(authorize)):
        return await _run(server, request, key, "translate")

    @api.post("/speech")
    async def speech_out(body: SpeechRequest, key=Depends(authorize)):
        """Text to speech in OpenAI's shape (the optional `speech` extra: Piper, English voices)."""
        from fastapi.responses import Response

        from loom.backends.piper import INSTALL_HINT
        from loom.errors import NotFoundError
        from loom.media.audio import SPEECH_FORMATS, encode_audio

        if body.model not in (*catalog.SPEECH_ALIASES, "piper"):
            raise errors.APIError(400, f"model {body.model!r} does not speak", param="model", code="model_not_supported")
        try:
            backend = await server.backend("piper")
        except NotFoundError:
            raise errors.APIError(400, f"speech output is not installed on this server ({INSTALL_HINT})", param="model",
                                  code="speech_not_installed") from None

        def work() -> bytes:
            rate, chunks = backend.speak(body.input, body.speed)
            samples = np.concatenate([*chunks, np.zeros(0, dtype=np.int16)])
            return encode_audio(samples, rate, body.response_format)

        audio = await anyio.to_thread.run_sync(work)
        server.account(key, "/v1/audio/speech", body.model, backend.count_tokens(body.input), 0)
        return Response(audio, media_type=SPEECH_FORMATS[body.response_format])

    return api


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field("alloy", max_length=100, description="any OpenAI voice name: the installed voice of the text's language speaks")
    response_format: Literal["mp3", "wav", "pcm", "flac", "opus", "aac"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(None, max_length=4096, description="accepted, not used: Piper voices have one style")
    stream_format: Literal["audio"] | None = None


async def _run(server, request: Request, key, task: str):
    from loom.media.audio import decode_audio, inspect_audio

    endpoint = f"/v1/audio/{'transcriptions' if task == 'transcribe' else 'translations'}"
    form = await _form(request)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise errors.APIError(400, "the form has no file part", param="file")
    model = str(form.get("model") or "").strip()
    if not model:
        raise errors.APIError(400, "model is required (whisper-1 means the default transcription model)", param="model")
    fmt = str(form.get("response_format") or "json")
    if fmt not in _FORMATS:
        raise errors.APIError(400, f"response_format {fmt!r} is not one of {', '.join(_FORMATS)}", param="response_format")
    granularities = [str(g) for g in form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")]
    if unknown := [g for g in granularities if g not in ("segment", "word")]:
        raise errors.APIError(400, f"timestamp_granularities {unknown[0]!r} is not segment or word", param="timestamp_granularities[]")
    options = Transcribe(language=(str(form.get("language") or "") or None) if task == "transcribe" else None, task=task,
                         prompt=str(form.get("prompt") or "") or None, temperature=_temperature(form.get("temperature")),
                         words="word" in granularities, simplified=not _flag(form.get("keep_traditional")))
    stream = _flag(form.get("stream"))
    name = upload.filename or "the audio file"
    data = await upload.read()
    await anyio.to_thread.run_sync(lambda: inspect_audio(data, name))  # the header checks, before any model loads
    if model not in server.backends and ":" not in model:  # refused from the catalog, before loading a chat model for nothing
        entry = await anyio.to_thread.run_sync(lambda: catalog.resolve(model, allow_paths=False))
        if entry.task != "transcribe":
            raise errors.APIError(400, f"model {model!r} does not transcribe speech (it is a {entry.task} model)", param="model",
                                  code="model_not_supported")
    backend = await server.backend(model)
    if "transcribe" not in backend.info().capabilities:
        raise errors.APIError(400, f"model {model!r} does not transcribe speech", param="model", code="model_not_supported")
    check = getattr(backend, "check", None)
    if check:
        check(options)  # an unknown language code or an English-only model asked to translate: 400 before any work
    audio = await anyio.to_thread.run_sync(lambda: decode_audio(data, name))

    def account(transcript: speech.Transcript) -> None:
        server.account(key, endpoint, model, 0, backend.count_tokens(transcript.text), audio.seconds)

    if stream:
        return StreamingResponse(_events(backend, audio, options, account), media_type="text/event-stream")
    transcript = await anyio.to_thread.run_sync(lambda: speech.transcribe(backend, audio, options))
    account(transcript)
    if fmt in ("text", "srt", "vtt"):
        media = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}[fmt]
        return PlainTextResponse(speech.subtitles(transcript.segments, fmt), media_type=f"{media}; charset=utf-8")
    usage = {"type": "duration", "seconds": math.ceil(audio.seconds)}
    if fmt == "json":
        return {"text": transcript.text, "usage": usage}
    body = {"task": task, "language": _language_name(transcript.language),
            "duration": round(audio.seconds, 3), "text": transcript.text,
            "segments": [_segment(s) for s in transcript.segments], "usage": usage}
    if options.words:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end} for s in transcript.segments for w in s.words]
    return body


async def _form(request: Request):
    try:
        form = await request.form()
    except Exception as e:  # noqa: BLE001 - starlette raises assorted errors for a body that is not multipart
        raise errors.APIError(400, f"the body is not a multipart form ({type(e).__name__})",
                              param="file") from e
    if unknown := sorted(set(form.keys()) - _FIELDS):
        raise errors.APIError(400, f"unknown form field {unknown[0]!r}", param=unknown[0])
    return form


def _temperature(raw) -> float:
    if raw in (None, ""):
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise errors.APIError(400, f"temperature {raw!r} is not a number", param="temperature") from None
    if not 0.0 <= value <= 1.0:
        raise errors.APIError(400, f"temperature {value} is outside 0..1", param="temperature")
    return value


def _flag(raw) -> bool:
    return str(raw or "").strip().lower() in ("true", "1", "yes", "on")


def _language_name(code: str) -> str:
    return _LANGUAGE_NAMES.get(code, code)


def _segment(s: Segment) -> dict:
    return {"id": s.id, "seek": int(s.start * 100), "start": s.start, "end": s.end, "text": s.text, "tokens": s.tokens,
            "temperature": s.temperature, "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
            "no_speech_prob": s.no_speech_prob, "language": s.language}


async def _events(backend, audio, options: Transcribe, account):
    """SSE: a delta per recognised segment, then the whole text with usage. An error after the
    stream started is an error event (the status line is already sent)."""
    transcript, text = speech.Transcript(seconds=audio.seconds), ""
    segments = backend.transcribe(audio, options)
    done = object()
    try:
        while (seg := await anyio.to_thread.run_sync(next, segments, done)) is not done:
            joined = glue(text, seg.text.strip())
            transcript.segments.append(seg)
            yield _sse({"type": "transcript.text.delta", "delta": joined[len(text):]})
            text = joined
    except InputError as e:
        yield _sse(errors.body(e.message, "invalid_request_error"))
        return
    except Exception as e:  # noqa: BLE001 - the client hears it as an event; the log keeps the traceback
        log.exception("transcription stream failed")
        yield _sse(errors.body(f"transcription failed: {type(e).__name__}", "server_error"))
        return
    finally:
        close = getattr(segments, "close", None)
        if close:
            close()
    account(transcript)
    yield _sse({"type": "transcript.text.done", "text": transcript.text,
                "usage": {"type": "duration", "seconds": math.ceil(audio.seconds)}})


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"
