"""`loom transcribe FILE...`: speech to text (loom.apps.speech), one recording after another.

    loom transcribe meeting.m4a                      plain text on stdout
    loom transcribe talk.mp4 -f srt -o subs/         subtitles written beside each other: subs/talk.srt
    loom transcribe call.wav -f json --language zh   JSON Lines: segments with times, language per segment
    loom transcribe interview.mp3 --translate        English text from any language

Recordings: wav, mp3, m4a, flac, ogg, opus, webm, and the audio track of videos (mp4, mov, mkv).
A progress bar follows the seconds of audio recognised. A file that cannot be read is named on stderr
and skipped; the exit code is then 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from loom.cli.output import console
from loom.errors import InputError, LoomError

FORMATS = ("text", "srt", "vtt", "json")


def transcribe(
    files: list[Path] = typer.Argument(..., help="recordings: wav mp3 m4a flac ogg opus webm, or videos (mp4 mov mkv)"),
    model: str = typer.Option("whisper-1", "--model", "-m", help="a transcription model (loom models list); whisper-1 = "
                              "the default (loom models default NAME), else whisper-base once pulled"),
    fmt: str = typer.Option("text", "--format", "-f", help="text | srt | vtt | json (JSON Lines: one object per file)"),
    language: str = typer.Option(None, "--language", "-l", help="ISO-639-1 code (zh, en, ...); default: detected per "
                                 "stretch of speech, so mixed Chinese + English keeps both"),
    translate: bool = typer.Option(False, "--translate", help="English text from speech in any language"),
    prompt: str = typer.Option(None, "--prompt", help="words and spellings to follow (names, jargon)"),
    words: bool = typer.Option(False, "--words", help="json: word-level timestamps too"),
    keep_traditional: bool = typer.Option(False, "--keep-traditional", help="Chinese as Whisper writes it (Traditional); "
                                          "default: Simplified"),
    out: Path = typer.Option(None, "--out", "-o", help="a folder: write FILE's stem + .txt/.srt/.vtt/.json there "
                             "instead of printing"),
    progress: bool = typer.Option(True, "--progress/--quiet", help="a progress bar per recording (seconds of audio)"),
) -> None:
    """Transcribe recordings to text or subtitles (offline Whisper: Chinese, English and more)."""
    from loom import registry
    from loom.apps import speech
    from loom.backends.base import Transcribe
    from loom.media.audio import decode_audio

    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    if translate and language:
        raise InputError("--translate detects the spoken language itself", "leave out --language")
    options = Transcribe(language=language, task="translate" if translate else "transcribe", prompt=prompt, words=words,
                         simplified=not keep_traditional)
    backend = registry.open_backend(model)
    if "transcribe" not in backend.info().capabilities:
        raise InputError(f"{model!r} is not a transcription model", "pick one from `loom models list` with task transcribe, "
                         "or pull one: loom models pull whisper-base")
    if check := getattr(backend, "check", None):
        check(options)  # an unknown language, or translation asked of an English-only model: once, not per file
    failed = 0
    for path in files:
        try:
            if not path.is_file():
                raise InputError(f"{path} does not exist or is not a file", "check the path")
            audio = decode_audio(path)
            result = _run(speech, backend, audio, options, path, progress and sys.stderr.isatty())
        except LoomError as e:
            failed += 1
            console.print(f"[bold red]error:[/bold red] {e.message}" + (f"\n[yellow]hint:[/yellow] {e.hint}" if e.hint else ""))
            continue
        text = render(path, result, fmt, speech)
        if out is not None:
            _write(out, path, fmt, text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    if failed:
        raise typer.Exit(1)


def _run(speech, backend, audio, options, path: Path, progress: bool):
    from tqdm import tqdm

    with tqdm(total=round(audio.seconds, 1), unit="s", desc=path.name, disable=not progress,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]") as bar:
        def advance(seg) -> None:
            bar.update(max(0.0, min(seg.end, audio.seconds) - bar.n))

        result = speech.transcribe(backend, audio, options, on_segment=advance)
        bar.update(max(0.0, audio.seconds - bar.n))
    return result


def render(path: Path, result, fmt: str, speech) -> str:
    if fmt == "json":
        return json.dumps({"file": str(path), "duration": round(result.seconds, 3), "language": result.language,
                           "text": result.text,
                           "segments": [{"start": s.start, "end": s.end, "text": s.text, "language": s.language}
                                        | ({"words": [w.__dict__ for w in s.words]} if s.words else {})
                                        for s in result.segments]}, ensure_ascii=False) + "\n"
    return speech.subtitles(result.segments, fmt)


def _write(folder: Path, path: Path, fmt: str, text: str) -> None:
    from loom import atomic

    target = folder / (path.stem + {"text": ".txt", "json": ".json"}.get(fmt, f".{fmt}"))
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, text)
    console.print(f"wrote {target}")
