"""Turn the synthesized WAVs into the benchmark clips: 16 kHz mono Ogg/Opus, 24 kbit/s.

Run with the Loom venv (needs numpy and PyAV):
    .venv/bin/python bench/data/asr/synth/build_clips.py WAV_DIR
Reads WAV_DIR/{zh,en}_XX.wav and writes, relative to the repo root:
  bench/data/asr/clips/*.ogg, bench/data/asr/transcripts.jsonl,
  tests/assets/audio/{en_short,zh_short}.ogg and tests/assets/audio/transcripts.json
Processing per clip: decode, downmix/resample to 16 kHz mono (libswresample), trim leading and trailing
silence (below -40 dBFS), pad 0.2 s of silence at each end, scale the peak to -1 dBFS, encode.
Mixed clips: the two trimmed sentences with 0.8 s of silence between them, then the same padding and scaling.
"""
import csv
import json
import sys
from pathlib import Path

import av
import numpy as np

RATE = 16000
BITRATE = 24000
HERE = Path(__file__).resolve().parent
ASR = HERE.parent                      # bench/data/asr
REPO = ASR.parents[2]                  # repo root
CLIPS = ASR / "clips"
TEST_AUDIO = REPO / "tests" / "assets" / "audio"

# (clip id, first sentence id, second sentence id)
MIXES = [
    ("mix_01", "zh_02", "en_02"),
    ("mix_02", "zh_09", "en_09"),
    ("mix_03", "zh_17", "en_17"),
    ("mix_04", "zh_05", "en_11"),
    ("mix_05", "en_12", "zh_10"),
    ("mix_06", "en_21", "zh_22"),
]
TEST_CLIPS = {"en_short.ogg": "en_16", "zh_short.ogg": "zh_15"}


def load(path: Path) -> np.ndarray:
    """Decode any audio file to float32 mono at RATE."""
    res = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    chunks = []
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            for f in res.resample(frame):
                chunks.append(f.to_ndarray().reshape(-1))
    for f in res.resample(None):
        chunks.append(f.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32)


def trim(x: np.ndarray, thresh_db: float = -40.0, win: int = 160) -> np.ndarray:
    """Cut leading/trailing stretches whose 10 ms RMS is below thresh_db relative to full scale."""
    n = len(x) // win
    rms = np.sqrt(np.mean(x[: n * win].reshape(n, win) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms) > thresh_db)[0]
    if len(loud) == 0:
        return x
    return x[loud[0] * win: (loud[-1] + 1) * win]


def finish(x: np.ndarray) -> np.ndarray:
    pad = np.zeros(int(0.2 * RATE), np.float32)
    x = np.concatenate([pad, x, pad])
    return (x * (10 ** (-1 / 20) / max(np.abs(x).max(), 1e-6))).astype(np.float32)


def write_opus(x: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="ogg") as c:
        s = c.add_stream("libopus", rate=RATE, layout="mono")
        s.bit_rate = BITRATE
        pcm = np.clip(x * 32767, -32768, 32767).astype(np.int16)
        step = 320  # 20 ms frames
        pts = 0
        for i in range(0, len(pcm), step):
            block = pcm[i: i + step]
            if len(block) < step:
                block = np.concatenate([block, np.zeros(step - len(block), np.int16)])
            fr = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            fr.sample_rate = RATE
            fr.pts = pts
            pts += step
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def main(wav_dir: Path) -> None:
    rows = list(csv.DictReader((HERE / "sentences.tsv").open(encoding="utf-8"), delimiter="\t"))
    text = {r["id"]: r["text"] for r in rows}
    lang = {r["id"]: r["lang"] for r in rows}
    audio = {r["id"]: trim(load(wav_dir / f"{r['id']}.wav")) for r in rows}
    CLIPS.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in rows:
        write_opus(finish(audio[r["id"]]), CLIPS / f"{r['id']}.ogg")
        lines.append({"file": f"{r['id']}.ogg", "lang": r["lang"], "text": r["text"]})
    gap = np.zeros(int(0.8 * RATE), np.float32)
    for mid, a, b in MIXES:
        write_opus(finish(np.concatenate([audio[a], gap, audio[b]])), CLIPS / f"{mid}.ogg")
        lines.append({"file": f"{mid}.ogg", "lang": "mix", "text": f"{text[a]} {text[b]}",
                      "parts": [{"lang": lang[a], "text": text[a]}, {"lang": lang[b], "text": text[b]}]})
    with (ASR / "transcripts.jsonl").open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    meta = {}
    for name, sid in TEST_CLIPS.items():
        x = finish(audio[sid])
        assert len(x) / RATE <= 5.0, (name, len(x) / RATE)
        write_opus(x, TEST_AUDIO / name)
        meta[name] = {"lang": lang[sid], "text": text[sid], "source": f"bench/data/asr/clips/{sid}.ogg",
                      "seconds": round(len(x) / RATE, 2)}
    (TEST_AUDIO / "transcripts.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n",
                                                 encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
