#!/usr/bin/env bash
# The CUDA path, end to end, in under 5 minutes on one GPU (issues 15, 16): pretrain the tiny preset on
# `cuda` and generate with the engine there, printing the device used and tokens/s; then instruction
# tuning in the SmolLM2-135M shape, Loom (full and LoRA) against a plain transformers loop (eager and
# compiled), with tokens/s and MFU (bench/sft_gpu.py). Run it on a GPU
# machine from the repository root after `make install` (or with torch + loom importable):
#
#     bash bench/gpu_check.sh [STEPS]
#
# It uses its own LOOM_HOME under /tmp and removes it afterwards. Exit status 0 only when both
# stages ran on the device asked for. DEVICE=cpu bash bench/gpu_check.sh 20 rehearses the script
# on a machine without a GPU (what CI-less sessions do before spending GPU time).
set -euo pipefail
STEPS="${1:-300}"
export DEVICE="${DEVICE:-cuda}"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export LOOM_HOME="$(mktemp -d /tmp/loom-gpu-check.XXXXXX)"
trap 'rm -rf "$LOOM_HOME"' EXIT

"$PY" - <<'PY'
import os, torch
if os.environ["DEVICE"] == "cuda":
    assert torch.cuda.is_available(), "no CUDA device visible to PyTorch"
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
          f"bf16 {torch.cuda.is_bf16_supported()}")
else:
    print(f"torch {torch.__version__}: rehearsal on {os.environ['DEVICE']}")
PY
"$PY" - "$STEPS" <<'PY'
from loom.data.bundled import write_dialogue_corpus
from loom.data.prepare import prepare
from loom.config import DataConfig, TokenizerConfig, TokenizeConfig
from loom.tokenizer.train import train_tokenizer
from loom.tokenizer.shards import tokenize_dataset
from loom import home
src = home.sources_dir() / "dialogues.jsonl"
write_dialogue_corpus(src)
prepare([str(src)], "gpu", DataConfig(min_chars=5), overwrite=True, progress=False)
train_tokenizer("gpu", "gpu", TokenizerConfig(kind="bpe", vocab_size=2000), overwrite=True, progress=False)
tokenize_dataset("gpu", "gpu", TokenizeConfig(val_fraction=0.1), progress=False)
PY
echo "== pretrain tiny on $DEVICE, $STEPS steps"
"$PY" -m loom pretrain --data gpu --name gpu --config configs/pretrain/tiny.yaml --device "$DEVICE" \
    --max-steps "$STEPS" --eval-every "$STEPS" --save-every "$STEPS" --quiet
"$PY" - <<'PY'
import json, os
from loom import home
lines = [json.loads(l) for l in open(home.run_dir("gpu") / "metrics.jsonl") if "tokens_per_s" in l]
result = json.loads((home.run_dir("gpu") / "result.json").read_text())
print(f"pretrain: device {result['device']}, last {lines[-1]['tokens_per_s']:.0f} train tok/s, loss {lines[-1]['loss']:.3f}")
assert result["device"].startswith(os.environ["DEVICE"]), result["device"]
PY
echo "== engine on $DEVICE: 16 concurrent sequences, then one"
"$PY" - <<'PY'
import os, threading, time
from loom import registry
from loom.backends.base import Request, Sampling
lm = registry.open_backend("gpu", device=os.environ["DEVICE"], max_batch=16)
print("engine:", lm.info().description)
assert str(lm.model.device).startswith(os.environ["DEVICE"])
def one(out, i):
    chunks = list(lm.stream(Request(Sampling(max_tokens=128, temperature=0.8, seed=i), prompt="the")))
    out.append(chunks[-1].completion_tokens)
for rows in (16, 1):
    out, t0 = [], time.perf_counter()
    threads = [threading.Thread(target=one, args=(out, i)) for i in range(rows)]
    [t.start() for t in threads]; [t.join() for t in threads]
    seconds = time.perf_counter() - t0
    print(f"engine, {rows:2d} sequence(s): {sum(out)} tokens in {seconds:.2f} s = {sum(out) / seconds:.0f} tok/s")
lm.close()
PY
"$PY" -m loom generate gpu --prompt "the" --max-new-tokens 64 --device "$DEVICE" --seed 0 >/dev/null
echo "== instruction tuning on $DEVICE: Loom vs a plain transformers loop, SmolLM2-135M shape (issue 16)"
if [ "$DEVICE" = cuda ]; then
    "$PY" bench/sft_gpu.py --tokenizer "$LOOM_HOME/tokenizers/gpu" --device cuda --steps "${SFT_STEPS:-12}"
else
    "$PY" bench/sft_gpu.py --tokenizer "$LOOM_HOME/tokenizers/gpu" --device cpu --small --batch 2 --len 128 --steps 3 --no-compile
fi
echo "gpu_check: OK"
