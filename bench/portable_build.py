"""Decode speed of the llama.cpp builds `make install` makes (no -march=native: the portable AVX2 build
and, on x86-64, the AVX-512 build engines load where the CPU has it; backends/llama_builds.py) against
a native build (-march=native, pip's default) on this machine, same run, same GGUF files.

Each measurement runs Loom's llama.cpp runner (the kernels and batch layout the server uses) in a
fresh interpreter, builds alternated trial by trial: a 32-token prompt, then greedy one-token steps,
for 1 sequence and for 16 in one batch. The native build is tried with weight repacking on first
(llama.cpp's default); on a CPU that lists AMX where the sandbox forbids it that run dies (SIGILL)
and the bench says so, then measures the native build with repacking off, as Loom's self-test
would run it.

Target (issue 29): the build engines load here >= 0.95x native, single stream and 16 streams. The
portable build's own ratio is printed too (what a CPU without AVX-512 gets is native for it).

    python bench/portable_build.py [--native-wheel PATH.whl] [--models smollm2 qwen2.5-0.5b] [--trials 3]

Without --native-wheel the native wheel is built once (~4 min on 2 cores) into
~/.cache/loom/wheels/llama-cpp-python-native/.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "0.3.36"
_RUN = """
import os, sys, time
import numpy as np
from loom.backends.runner_llamacpp import LlamaCppRunner, system_info
path, rows_max, steps, repack = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
runner = LlamaCppRunner(path, max_batch=rows_max, context=1024, repack=repack)
runner.numpy = True
out = []
for rows in (1, rows_max):
    prompts = [[(100 + 7 * i + r) % runner.n_vocab for i in range(32)] for r in range(rows)]
    first = runner.prefill_many(prompts)
    for _, slot in first:
        runner.admit(slot)
    tokens = [int(np.argmax(row)) for row, _ in first]
    start = time.perf_counter()
    for k in range(steps):
        logits = runner.step(tokens, [32 + k] * rows)
        tokens = [int(np.argmax(row)) for row in logits]
    out.append(rows * steps / (time.perf_counter() - start))
    runner.reset()
print(system_info().replace(chr(10), " "))
print(*out)
"""


def native_wheel(given: str | None) -> Path:
    if given:
        return Path(given)
    folder = Path.home() / ".cache" / "loom" / "wheels" / f"llama-cpp-python-{VERSION}-native"
    wheels = sorted(folder.glob("*.whl"))
    if wheels:
        return wheels[0]
    print(f"building a native llama.cpp {VERSION} (-march=native) for comparison, once (~4 min)...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CMAKE_ARGS="-DLLAVA_BUILD=OFF", CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 1))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-cache-dir", "--no-deps", "--no-binary", "llama-cpp-python",
                    "-w", str(folder), f"llama-cpp-python=={VERSION}"], check=True, env=env)
    return sorted(folder.glob("*.whl"))[0]


def rate(path: str, lib: str | None, rows: int, steps: int, repack: bool) -> tuple[list[float] | None, str]:
    """(tok/s at 1 and `rows` sequences, the build's features) or (None, how it died). lib: the build's
    library folder (None: the installed package's own)."""
    env = dict(os.environ)
    env.pop("LLAMA_CPP_LIB_PATH", None)
    if lib:
        env["LLAMA_CPP_LIB_PATH"] = lib
    out = subprocess.run([sys.executable, "-c", _RUN, path, str(rows), str(steps), "1" if repack else "0"],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        how = signal.Signals(-out.returncode).name if out.returncode < 0 else f"exit {out.returncode}: {out.stderr[-300:]}"
        return None, how
    lines = out.stdout.strip().splitlines()
    return [float(v) for v in lines[-1].split()], lines[-2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--native-wheel", help="a llama_cpp_python wheel built with -march=native (default: build one)")
    ap.add_argument("--models", nargs="+", default=["smollm2", "qwen2.5-0.5b"])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--steps", type=int, default=64, help="decode steps per measurement")
    ap.add_argument("--rows", type=int, default=16)
    args = ap.parse_args()

    from loom import catalog
    from loom.backends.llama_builds import usable
    from loom.backends.llamacpp import weights_file

    native_dir = tempfile.mkdtemp(prefix="llama-native-")
    with zipfile.ZipFile(native_wheel(args.native_wheel)) as z:
        z.extractall(native_dir)
    native_lib = str(Path(native_dir) / "llama_cpp" / "lib")
    builds = usable()  # the one engines load here first, ..., the portable build
    ratios, portable_ratios = [], []
    for model in args.models:
        entry = catalog.resolve(model)
        if model != "smollm2" and not Path(entry.path).is_file():
            subprocess.run([sys.executable, "-m", "loom", "models", "pull", model, "--if-missing"], check=True)
        path = weights_file(entry)
        crashed, info = rate(path, native_lib, args.rows, 4, repack=True)
        native_repack = crashed is not None
        print(f"{model}: native build with weight repacking on: {'runs' if native_repack else 'dies with ' + info}")
        runs: dict[str, list] = {b.name: [] for b in builds} | {"native": []}
        infos = {}
        for _ in range(args.trials):
            for name, lib, repack in [(b.name, b.lib, True) for b in builds] + [("native", native_lib, native_repack)]:
                r, infos[name] = rate(path, lib, args.rows, args.steps, repack=repack)
                if r is None:
                    sys.exit(f"{model}: the {name} build died: {infos[name]}")
                runs[name].append(r)
        for k, label in ((0, "1 stream"), (1, f"{args.rows} streams")):
            mn = statistics.median(r[k] for r in runs["native"])
            parts = []
            for b in builds:
                mb = statistics.median(r[k] for r in runs[b.name])
                parts.append(f"{b.name} {mb:.1f} tok/s = {mb / mn:.3f}x")
                (ratios if b == builds[0] else portable_ratios).append(mb / mn)
            print(f"{model}, {label}: native (repacking {'on' if native_repack else 'off'}) {mn:.1f} tok/s; " + "; ".join(parts))
        for name, text in infos.items():
            print(f"  {name}: {text}")
    if len(builds) > 1:
        print(f"the portable build alone (what a CPU without AVX-512 would load): lowest {min(portable_ratios):.3f}x native")
    worst = min(ratios)
    print(f"ratio {worst:.3f}x the {builds[0].name} build (what engines load here) vs native decode, the lowest of "
          f"{len(ratios)} (target >= 0.95x): "
          f"{'PASS' if worst >= 0.95 else 'FAIL'}")


if __name__ == "__main__":
    main()
