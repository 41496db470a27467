"""OCR engines: an image in, text lines with boxes and confidences out.

    rapidocr   the default: PP-OCRv6 small detection + recognition (Chinese, English, Japanese, Latin
               scripts) and a direction classifier, bundled in the `rapidocr` wheel and run on
               onnxruntime. Offline as long as its default models are kept: choosing another model
               or language would make it download, so Loom never passes one.
    tesseract  the engine many users already have (Debian `tesseract-ocr` + `tesseract-ocr-chi-sim`),
               called as a program; used when chosen and installed.

Engines are loaded once per process (rapidocr: ~0.6 s) and shared; calls are serialised by a lock
(onnxruntime already uses every core for one image)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass

from loom.errors import InputError

ENGINES = ("rapidocr", "tesseract")


@dataclass
class Line:
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels, origin top left
    confidence: float  # 0..1
    quad: tuple | None = None  # the detector's four corners (tl, tr, br, bl) when it gives them: skew is read from them

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict:
        return {"text": self.text, "box": [round(v, 1) for v in self.box], "confidence": round(self.confidence, 4)}


_lock = threading.Lock()
_loaded: dict[str, object] = {}


def recognise(image, engine: str = "rapidocr", flip_lines: bool = True) -> list[Line]:
    """Lines found in a PIL RGB image, in the engine's order (reading order is layout.py's job).
    flip_lines=False (rapidocr): no per-line 180-degree correction, so an upside-down page reads as
    garbage with low confidence: how pages.py tells which way up a sideways page goes."""
    check_engine(engine)
    with _lock:
        return _rapidocr(image, flip_lines) if engine == "rapidocr" else _tesseract(image)


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise InputError(f"unknown OCR engine {engine!r}", f"choose one of: {', '.join(ENGINES)}")


def engine_version(engine: str) -> str:
    """Goes into the OCR cache key: a new engine or model version reads the file again."""
    check_engine(engine)
    if engine == "rapidocr":
        from importlib.metadata import version

        return f"rapidocr-{version('rapidocr')}"
    return f"tesseract-{_tesseract_version()}"


def _rapidocr_engine():
    if "rapidocr" not in _loaded:
        try:
            from rapidocr import RapidOCR
        except ImportError as e:
            raise InputError("OCR needs the rapidocr package", "pip install rapidocr==3.10.0 onnxruntime") from e
        import logging

        # The defaults only: any other model or language choice makes rapidocr download it.
        _loaded["rapidocr"] = RapidOCR(params={"Global.log_level": "error"})
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return _loaded["rapidocr"]


def _rapidocr(image, flip_lines: bool = True) -> list[Line]:
    import numpy as np

    result = _rapidocr_engine()(np.asarray(image)[:, :, ::-1], use_cls=flip_lines)  # arrays are BGR (OpenCV order)
    if result.boxes is None or result.txts is None:
        return []
    lines = []
    for quad, text, score in zip(result.boxes, result.txts, result.scores):
        xs, ys = [float(p[0]) for p in quad], [float(p[1]) for p in quad]
        if text.strip():
            lines.append(Line(text.strip(), (min(xs), min(ys), max(xs), max(ys)), float(score), tuple(zip(xs, ys))))
    return lines


def _tesseract_version() -> str:
    if "tesseract" not in _loaded:
        exe = shutil.which("tesseract")
        if exe is None:
            raise InputError("the tesseract engine is not installed",
                             "apt install tesseract-ocr tesseract-ocr-chi-sim, or use --engine rapidocr (bundled)")
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        langs = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30).stdout.split()
        _loaded["tesseract"] = (exe, (out.stdout or out.stderr).split("\n")[0].split()[-1], langs)
    return _loaded["tesseract"][1]


def _tesseract(image) -> list[Line]:
    """`tesseract - - tsv`: words with boxes; words of one (block, paragraph, line) make a Line."""
    import io

    _tesseract_version()
    exe, _, langs = _loaded["tesseract"]
    lang = "+".join(x for x in ("chi_sim", "eng") if x in langs) or "eng"
    png = io.BytesIO()
    image.save(png, format="PNG")
    # OpenMP threads make tesseract up to 8x slower on a 2-core machine (7.5 s vs 0.93 s on one page)
    env = dict(os.environ, OMP_THREAD_LIMIT=os.environ.get("OMP_THREAD_LIMIT", "1"))
    run = subprocess.run([exe, "-", "-", "-l", lang, "tsv"], input=png.getvalue(), capture_output=True, timeout=600, env=env)
    if run.returncode != 0:
        raise InputError(f"tesseract failed: {run.stderr.decode(errors='replace')[:300]}", "check the tesseract install")
    rows = [r.split("\t") for r in run.stdout.decode("utf-8", errors="replace").splitlines()[1:]]
    grouped: dict[tuple, list] = {}
    for r in rows:
        if len(r) == 12 and r[0] == "5" and r[11].strip():
            grouped.setdefault((r[2], r[3], r[4]), []).append(r)
    lines = []
    for words in grouped.values():
        x0 = min(int(w[6]) for w in words)
        y0 = min(int(w[7]) for w in words)
        x1 = max(int(w[6]) + int(w[8]) for w in words)
        y1 = max(int(w[7]) + int(w[9]) for w in words)
        text = _join_words([w[11] for w in words])
        conf = sum(max(float(w[10]), 0.0) for w in words) / len(words) / 100
        lines.append(Line(text, (x0, y0, x1, y1), conf))
    return lines


def _join_words(words: list[str]) -> str:
    """Tesseract splits Chinese into one "word" per character: no spaces between Chinese words."""
    from loom.text import glue

    out = ""
    for w in words:
        out = glue(out, w)
    return out
