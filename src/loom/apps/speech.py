"""Recordings to text (issue 32): the transcription app the CLI, the server and knowledge bases share.

    from loom.apps.speech import transcribe, subtitles
    result = transcribe(registry.open_backend("whisper-1"), decode_audio(Path("meeting.m4a")))
    print(subtitles(result.segments, "srt"))

The backend streams segments (backends.base.Segment); this module collects them, says which
language the recording is mostly in, and writes text, SRT and WebVTT."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loom.backends.base import Backend, Segment, Transcribe
from loom.errors import InputError
from loom.text import glue

@dataclass
class Transcript:
    segments: list[Segment] = field(default_factory=list)
    seconds: float = 0.0  # the recording's length

    @property
    def text(self) -> str:
        return join_text(self.segments)

    @property
    def language(self) -> str:
        """The language most of the speech is in (by seconds), "" when nothing was said."""
        spoken: dict[str, float] = {}
        for s in self.segments:
            spoken[s.language] = spoken.get(s.language, 0.0) + (s.end - s.start)
        return max(spoken, key=spoken.get) if spoken else ""


def transcribe(backend: Backend, audio, options: Transcribe | None = None,
               on_segment: Callable[[Segment], None] | None = None) -> Transcript:
    out = Transcript(seconds=audio.seconds)
    for seg in backend.transcribe(audio, options or Transcribe()):
        out.segments.append(seg)
        if on_segment:
            on_segment(seg)
    return out


def transcribe_file(path: Path, model: str = "whisper-1", options: Transcribe | None = None) -> Transcript:
    """A recording on disk, checked (loom.media.audio limits) and transcribed by `model` (default: the
    default transcription model), for apps that take recordings as input: knowledge bases, summaries."""
    from loom import catalog
    from loom.media.audio import decode_audio

    audio = decode_audio(path)
    name = catalog.default_transcription_model() if model == catalog.TRANSCRIPTION_ALIAS else model
    return transcribe(transcriber(name), audio, options)


@functools.lru_cache(maxsize=2)
def transcriber(name: str) -> Backend:
    """One loaded transcription model per process and name (~0.5 s and ~150 MB each), shared by every recording."""
    from loom import registry

    return registry.open_backend(name)


def join_text(segs: list[Segment]) -> str:
    """Segments joined as running text (loom.text.glue: no space between two Chinese segments)."""
    return functools.reduce(glue, (s.text.strip() for s in segs), "")


def clock(seconds: float, sep: str = ",") -> str:
    """00:03:12,480 (SRT) / 00:03:12.480 (WebVTT)."""
    ms = int(round(max(0.0, seconds) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def subtitles(segs: list[Segment], fmt: str) -> str:
    """text, srt or vtt."""
    if fmt == "text":
        return join_text(segs) + "\n"
    if fmt == "srt":
        return "".join(f"{i}\n{clock(s.start)} --> {clock(s.end)}\n{s.text.strip()}\n\n" for i, s in enumerate(segs, 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(f"{clock(s.start, '.')} --> {clock(s.end, '.')}\n{s.text.strip()}\n\n" for s in segs)
    raise InputError(f"unknown subtitle format {fmt!r}", "use text, srt or vtt")
