"""Audio in (issue 32): any container FFmpeg reads (wav, mp3, m4a, flac, ogg, webm, and a video's audio
track) -> 16 kHz mono float32 samples, with limits, and voice-activity chunks for transcription.

Every recording that reaches a transcription model (an upload, a CLI file, a KB file) passes through
`decode_audio`. The checks run in the order that costs least:
  1. size in bytes (before anything is parsed), and zero length;
  2. the container: FFmpeg must find an audio stream in it (a text file or a JPEG renamed .mp3 is not
     audio, whatever its name says);
  3. the declared duration, before any sample is decoded: ten hours of audio are refused here;
  4. the decode itself, stopped as soon as the decoded audio passes the limit (a header can lie),
     and a file whose decoded audio ends well before its declared duration is named as truncated.
Steps 1-3 (and a WAV whose bytes end before its header says) are `inspect_audio`: what an upload is
checked with before anything is written, without decoding it; the transcription's decode does step 4.

PyAV (`av`, FFmpeg's libraries in a wheel; it comes with faster-whisper) is imported inside the
functions, so importing this module costs nothing."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loom.errors import InputError
from loom.media.images import settings

SAMPLE_RATE = 16_000  # Hz: what Whisper's feature extractor expects
AUDIO_TYPES = {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".webm", ".weba", ".mp4", ".mov",
               ".mkv", ".avi", ".amr", ".wma"}
_TRUNCATED_SHARE = 0.9  # decoded audio shorter than this share of the declared duration (and by > 1 s) is truncated


@dataclass
class Audio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE, in [-1, 1]
    name: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def inspect_audio(data: bytes | Path, name: str = "") -> float | None:
    """The checks of decode_audio that need no decoding (size, an audio track, the declared duration,
    a WAV whose bytes end before its header says): what an upload is checked with before anything is
    written; the decode that transcription does later checks the rest. Returns the declared seconds."""
    with _opened(data, name) as (_, _, declared):
        return declared


def decode_audio(data: bytes | Path, name: str = "") -> Audio:
    """Samples of a recording (bytes, or a file path), checked against media.audio_max_bytes and
    media.audio_max_seconds. Raises InputError naming the problem and the fix."""
    name = _name(data, name)
    with _opened(data, name) as (container, stream, declared):
        samples = _decode(container, stream, name, settings().audio_max_seconds)
    seconds = len(samples) / SAMPLE_RATE
    if seconds == 0:
        raise InputError(f"{name} holds no audio samples (it may be truncated)", "send the whole recording again")
    if declared is not None and seconds < declared * _TRUNCATED_SHARE and declared - seconds > 1.0:
        raise _truncated(name, declared, seconds)
    return Audio(samples, name)


def _name(data: bytes | Path, name: str) -> str:
    return name or (data.name if isinstance(data, Path) else "the audio file")


@contextlib.contextmanager
def _opened(data: bytes | Path, name: str):
    """(container, audio stream, declared seconds or None) after the checks that cost no decoding."""
    limits, name = settings(), _name(data, name)
    size = data.stat().st_size if isinstance(data, Path) else len(data)
    if size == 0:
        raise InputError(f"{name} is empty (0 bytes)", "send the recording again; the copy that arrived has no content")
    if size > limits.audio_max_bytes:
        raise InputError(f"{name} is {size:,} bytes, over the {limits.audio_max_bytes:,}-byte limit for audio",
                         "split the recording, or raise media.audio_max_bytes in the serve config")
    import av

    source = str(data) if isinstance(data, Path) else io.BytesIO(data)
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{name} is not audio FFmpeg can read ({_reason(e)})",
                         f"send a recording: {', '.join(sorted(t.lstrip('.') for t in AUDIO_TYPES))}") from e
    with container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise InputError(f"{name} has no audio track", "send a recording, or a video with sound")
        wav = _wav_header(_head(data))
        declared = wav[0] if wav else _declared_seconds(container, stream)
        if declared is not None and declared > limits.audio_max_seconds:
            raise InputError(f"{name} is {_clock(declared)} long, over the {_clock(limits.audio_max_seconds)} limit",
                             "split the recording, or raise media.audio_max_seconds in the serve config")
        if wav and (held := (size - wav[1]) / wav[2]) < declared * _TRUNCATED_SHARE and declared - held > 1.0:
            raise _truncated(name, declared, held)
        yield container, stream, declared


def _truncated(name: str, declared: float, seconds: float) -> InputError:
    return InputError(f"{name} is truncated: its header says {_clock(declared)}, its data ends at {_clock(seconds)}",
                      "send the whole recording again")


def _decode(container, stream, name: str, max_seconds: float) -> np.ndarray:
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    limit = int(max_seconds * SAMPLE_RATE)
    pieces, total = [], 0
    try:
        for frame in container.decode(stream):
            frame.pts = None  # the resampler keeps its own clock; broken timestamps must not stop it
            for out in resampler.resample(frame):
                pieces.append(out.to_ndarray().reshape(-1))
                total += pieces[-1].size
            if total > limit:
                raise InputError(f"{name} is longer than the {_clock(max_seconds)} limit",
                                 "split the recording, or raise media.audio_max_seconds in the serve config")
        for out in resampler.resample(None):  # flush
            pieces.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as e:
        if total < SAMPLE_RATE // 10:  # nothing usable before the fault
            raise InputError(f"{name} could not be decoded ({_reason(e)})", "send the recording again, or convert it to wav or mp3") from e
        # FFmpeg stops at a damaged frame late in a file; what came before is kept and the truncation check decides
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return (np.concatenate(pieces).astype(np.float32) / 32768.0).clip(-1.0, 1.0)


def _head(data: bytes | Path, size: int = 1 << 16) -> bytes:
    if isinstance(data, Path):
        with open(data, "rb") as f:
            return f.read(size)
    return data[:size]


def _wav_header(head: bytes) -> tuple[float, int, int] | None:
    """(seconds its data lasts, offset of the data, bytes per second) as a WAV header says (FFmpeg
    estimates a WAV from the bytes it was given, so a cut-off upload or a header claiming ten hours
    would pass unseen). None: not a WAV, or a streamed one whose sizes are placeholders."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if chunk == b"fmt " and pos + 16 <= len(head):
            byte_rate = int.from_bytes(head[pos + 16:pos + 20], "little")
        elif chunk == b"data":
            return (size / byte_rate, pos + 8, byte_rate) if byte_rate and 0 < size < 0xFFFFFFFF else None
        pos += 8 + size + (size & 1)
    return None


def _declared_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _reason(e: Exception) -> str:
    return str(getattr(e, "strerror", None) or e).strip() or type(e).__name__


def time_range(start: float, end: float) -> str:
    """00:03:12-00:03:40: how a citation names the stretch of a recording it comes from."""
    def hms(t: float) -> str:
        t = int(t)
        return f"{t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}"
    return f"{hms(start)}-{hms(end)}"


def _clock(seconds: float) -> str:
    """01:02:03 (hours shown from one hour up)."""
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def speech_spans(audio: Audio, max_seconds: float = 30.0, join_gap: float = 1.0) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """[(start, end, utterances)] in samples: stretches with speech (Silero VAD, bundled with
    faster-whisper), each with the utterances it joins. Utterances less than `join_gap` seconds apart
    are joined while the stretch fits Whisper's `max_seconds` window: every decode pads to 30 s, so
    decoding each sentence alone would cost a window per sentence. No speech found: no stretch (Whisper
    given six seconds of silence writes "You")."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    found = get_speech_timestamps(audio.samples, VadOptions(min_silence_duration_ms=500, max_speech_duration_s=max_seconds,
                                                            speech_pad_ms=400))
    if not found:
        return []
    window, gap = int(max_seconds * SAMPLE_RATE), int(join_gap * SAMPLE_RATE)
    spans: list[tuple[int, int, list[tuple[int, int]]]] = []
    for part in found:
        start, end = part["start"], part["end"]
        if spans and end - spans[-1][0] <= window and start - spans[-1][1] < gap:
            first, _, parts = spans[-1]
            spans[-1] = (first, end, parts + [(start, end)])
        else:
            spans.append((start, end, [(start, end)]))
    return spans


SPEECH_FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac", "opus": "audio/ogg",
                  "aac": "audio/aac"}
PCM_RATE = 24_000  # OpenAI's `pcm`: raw 16-bit little-endian mono at 24 kHz


def encode_audio(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """int16 mono samples -> a file in `fmt` (SPEECH_FORMATS), through FFmpeg's encoders (PyAV)."""
    import av

    if fmt not in SPEECH_FORMATS:
        raise InputError(f"unknown audio format {fmt!r}", f"use one of: {', '.join(SPEECH_FORMATS)}")
    samples = np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1)
    if fmt == "wav":
        import wave

        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(samples.tobytes())
        return out.getvalue()
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = rate
    if fmt == "pcm":
        resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_RATE)
        return b"".join(f.to_ndarray().tobytes() for f in [*resampler.resample(frame), *resampler.resample(None)])
    container_format, codec, out_rate = {"mp3": ("mp3", "libmp3lame", rate), "flac": ("flac", "flac", rate),
                                         "opus": ("ogg", "libopus", 48_000), "aac": ("adts", "aac", rate)}[fmt]
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=out_rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=out_rate)
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(piece):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()
