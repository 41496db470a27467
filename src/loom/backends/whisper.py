"""Speech to text with Whisper in CTranslate2 form (faster-whisper), int8 on the CPU.

How a recording is read (backend.transcribe):
  1. Silero VAD (bundled with faster-whisper) finds the stretches with speech; stretches with short
     pauses between them are joined up to Whisper's 30-second window (media.audio.speech_spans).
     Silence is never decoded, which is where Whisper invents text ("Thank you for watching").
  2. Each stretch is decoded on its own, its language detected on its own unless the request names
     one: a recording that goes from Chinese to English keeps both (one pass over the whole of such a
     recording locked onto Chinese and dropped the English). Detection costs one encoder pass per
     stretch (~0.3 s on 2 cores; faster-whisper 1.2.1 does not reuse it for decoding), which is most
     of why a long recording takes ~1.1x as long as one pass over it; naming the language saves it.
  3. A stretch of several utterances whose language detection is unsure (< 0.95: mixed stretches
     measured 0.51-0.86, one-language ones 0.998+) is decoded again with word times (alignment); an
     utterance in which no word was heard (Whisper, decoding in the other utterance's language,
     skipped it) is decoded on its own, its language detected on its own.
  4. Mandarin comes out of Whisper in Traditional characters; it is converted to Simplified (OpenCC
     t2s) unless the request keeps the original.

The model is shared by every request; CTranslate2 runs one decode at a time per model here (a lock),
on all the CPU threads it was given."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from loom.backends.base import Backend, Info, Segment, Transcribe, Unsupported, Word
from loom.catalog import ModelEntry
from loom.errors import InputError

# A stretch of several utterances whose language detection is less sure than this may mix languages:
# measured on bench/data/asr, Chinese + English stretches gave 0.51-0.86, one-language stretches 0.998-0.999.
_SURE_OF_LANGUAGE = 0.95
_ENGLISH_ONLY_HINT = "use a multilingual model (loom models pull whisper-base) or send English audio"


def _install_hint() -> str:
    return "pip install faster-whisper==1.2.1 opencc-python-reimplemented==0.1.7"


class Whisper(Backend):
    def __init__(self, entry: ModelEntry, threads: int = 0) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise InputError("transcription needs faster-whisper", _install_hint()) from e
        self.name, self.entry = entry.name, entry
        # int8: ~4x smaller than the float16 weights on disk and the fastest CPU path (loads in ~0.5 s)
        self.model = WhisperModel(entry.path, device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)
        self.multilingual = bool(self.model.model.is_multilingual)
        self._lock = threading.Lock()
        self._t2s = None

    def info(self) -> Info:
        caps = ["transcribe", "translate"] if self.multilingual else ["transcribe"]
        return Info(self.name, "whisper", caps, description=self.entry.description)

    def check(self, options: Transcribe) -> str | None:
        """The language code to decode in (None: detect), or InputError/Unsupported naming the problem."""
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        language = (options.language or "").strip().lower() or None
        if language is not None and language not in _LANGUAGE_CODES:
            raise InputError(f"unknown language code {options.language!r}",
                             "send an ISO-639-1 code such as zh, en, ja, fr, or leave language out to detect it", param="language")
        if not self.multilingual:
            if options.task == "translate":
                raise Unsupported(f"model {self.name!r} is English-only and cannot translate", _ENGLISH_ONLY_HINT)
            if language not in (None, "en"):
                raise Unsupported(f"model {self.name!r} is English-only; language {language!r} needs a multilingual model",
                                  _ENGLISH_ONLY_HINT)
            return "en"
        return language

    def transcribe(self, audio, options: Transcribe | None = None) -> Iterator[Segment]:
        from loom.media.audio import SAMPLE_RATE, speech_spans

        options = options or Transcribe()
        language = self.check(options)
        count = 0
        for start, end, parts in speech_spans(audio):
            clip, offset = audio.samples[start:end], start / SAMPLE_RATE
            decoded, sure = self._decode(clip, offset, language, options, words=options.words)
            if len(parts) > 1 and language is None and self.multilingual and sure < _SURE_OF_LANGUAGE:
                if not options.words:  # word times say which utterance was heard; decoded again with them
                    decoded, _ = self._decode(clip, offset, language, options, words=True)
                decoded = self._fill_gaps(audio, decoded, parts, options)
                if not options.words:
                    for seg in decoded:
                        seg.words = []
            for seg in decoded:
                seg.id = count
                count += 1
                yield seg

    def _fill_gaps(self, audio, decoded: list[Segment], parts: list[tuple[int, int]], options: Transcribe) -> list[Segment]:
        """Utterances of a joined stretch in which no word was recognised (the stretch was decoded in
        another utterance's language, and Whisper skipped this one): decoded again alone, their
        language detected alone. Word times come from alignment, so they say where text really is;
        segment times often cover the whole stretch."""
        from loom.media.audio import SAMPLE_RATE

        heard = [(w.start + w.end) / 2 for seg in decoded for w in seg.words]
        out = list(decoded)
        for s, e in parts:
            a, b = s / SAMPLE_RATE, e / SAMPLE_RATE
            if (b - a) >= 0.5 and not any(a <= t <= b for t in heard):
                out += self._decode(audio.samples[s:e], a, None, options, words=True)[0]
        return sorted(out, key=lambda seg: seg.start)

    def _decode(self, samples, offset: float, language: str | None, options: Transcribe,
                words: bool = False) -> tuple[list[Segment], float]:
        """The segments of one stretch (times from the start of the recording), and how sure the
        language detection was (1.0 when the language was given)."""
        temperature = options.temperature if options.temperature > 0 else (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
        with self._lock:
            segments, info = self.model.transcribe(
                samples, language=language, task=options.task, initial_prompt=options.prompt or None, temperature=temperature,
                word_timestamps=words, beam_size=5, condition_on_previous_text=False, vad_filter=False)
            found = list(segments)  # decoding happens while the generator is read: inside the lock
        out = []
        for s in found:
            text = self._script(s.text.strip(), info.language, options)
            if not text:
                continue
            words = [Word(round(offset + float(w.start), 3), round(offset + float(w.end), 3), self._script(w.word, info.language, options),
                          float(w.probability))
                     for w in (s.words or [])]
            out.append(Segment(0, round(offset + float(s.start), 3), round(offset + float(s.end), 3), text, info.language, words,
                               float(s.avg_logprob), float(s.no_speech_prob), float(s.compression_ratio), float(s.temperature or 0.0),
                               [int(t) for t in s.tokens]))
        return out, float(info.language_probability or 1.0)

    def _script(self, text: str, language: str, options: Transcribe) -> str:
        """Simplified characters for Chinese unless the caller keeps Whisper's (Traditional) output."""
        if language != "zh" or not options.simplified or options.task == "translate":
            return text
        if self._t2s is None:
            try:
                from opencc import OpenCC
            except ImportError as e:
                raise InputError("Simplified Chinese output needs opencc-python-reimplemented", _install_hint()) from e
            self._t2s = OpenCC("t2s")
        return self._t2s.convert(text)
