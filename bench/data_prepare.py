"""Benchmark `loom data prepare`: MB/s, peak RSS (whole process tree) and recall of planted
duplicates, on a generated corpus with 10% exact and 10% near duplicates.

Targets (issue 2): >= 20 MB/s, peak RSS < 1 GB, >= 95% of planted duplicates removed.
The reference figure in the same run is the raw read speed of the same files (`cat > /dev/null`
equivalent in Python), so the ratio says how close cleaning+dedup gets to plain I/O.

    python bench/data_prepare.py [--mb 500] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]


def make_vocab(rng: random.Random, n: int = 30000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(n)]


def unique_doc(rng: random.Random, vocab: list[str]) -> str:
    if rng.random() < 0.2:  # Chinese documents: random characters with punctuation
        chars = rng.choices(CJK, k=rng.randint(600, 1500))
        for i in range(20, len(chars), 25):
            chars[i] = "。"
        return "".join(chars)
    words = rng.choices(vocab, k=rng.randint(300, 700))
    return " ".join(words) + "."


def near_copy(rng: random.Random, doc: str) -> str:
    """Change ~2% of words (or characters, for Chinese): estimated Jaccard ~0.9."""
    if " " in doc:
        words = doc.split(" ")
        for i in rng.sample(range(len(words)), max(1, len(words) // 50)):
            words[i] = words[i][::-1] + "x"
        return " ".join(words)
    chars = list(doc)
    for i in rng.sample(range(len(chars)), max(1, len(chars) // 100)):
        chars[i] = rng.choice(CJK)
    return "".join(chars)


def write_corpus(out_dir: Path, target_mb: int, seed: int = 0) -> dict:
    """JSONL files of ~50 MB: 80% unique docs, 10% exact copies, 10% near copies of earlier docs."""
    rng = random.Random(seed)
    vocab = make_vocab(rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, n_files, counts = 0, 0, {"unique": 0, "exact": 0, "near": 0}
    pool: list[str] = []
    f = None
    while written < target_mb * 1e6:
        if f is None or f.tell() > 50e6:
            if f:
                f.close()
            f = open(out_dir / f"part-{n_files:03d}.jsonl", "w", encoding="utf-8")
            n_files += 1
        r = rng.random()
        if r < 0.1 and pool:
            text, kind = rng.choice(pool), "exact"
        elif r < 0.2 and pool:
            text, kind = near_copy(rng, rng.choice(pool)), "near"
        else:
            text, kind = unique_doc(rng, vocab), "unique"
            if len(pool) < 5000:
                pool.append(text)
            else:
                pool[rng.randrange(len(pool))] = text
        counts[kind] += 1
        line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
        f.write(line)
        written += len(line.encode("utf-8"))
    f.close()
    return counts | {"bytes": int(written), "files": n_files}


def peak_tree_rss(proc: psutil.Process, stop: threading.Event, result: dict) -> None:
    peak = 0
    while not stop.is_set():
        try:
            procs = [proc] + proc.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    result["peak_rss"] = peak


def read_speed(files: list[Path]) -> float:
    t0 = time.perf_counter()
    total = 0
    for p in files:
        with open(p, encoding="utf-8") as f:
            for line in f:
                total += len(line)
    return sum(p.stat().st_size for p in files) / 1e6 / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--keep", action="store_true", help="keep the generated corpus")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loom-bench-data-"))
    try:
        t0 = time.perf_counter()
        planted = write_corpus(work / "corpus", args.mb)
        print(f"generated {planted['bytes'] / 1e6:.0f} MB in {time.perf_counter() - t0:.0f} s: {planted}", flush=True)
        files = sorted((work / "corpus").glob("*.jsonl"))
        ref_mbs = read_speed(files)
        env = dict(os.environ, LOOM_HOME=str(work / "home"))
        cmd = [sys.executable, "-m", "loom", "data", "prepare", str(work / "corpus"), "--name", "bench", "--json"]
        t0 = time.perf_counter()
        proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        stop, mem = threading.Event(), {}
        watcher = threading.Thread(target=peak_tree_rss, args=(proc, stop, mem))
        watcher.start()
        stdout, _ = proc.communicate()
        seconds = time.perf_counter() - t0
        stop.set()
        watcher.join()
        if proc.returncode != 0:
            sys.exit(f"loom data prepare failed with exit code {proc.returncode}")
        report = json.loads(stdout)
        removed = report["removed"].get("exact_duplicate", 0) + report["removed"].get("near_duplicate", 0)
        planted_dups = planted["exact"] + planted["near"]
        recall = min(removed, planted_dups) / planted_dups
        false_removals = max(0, removed - planted_dups)
        mbs = planted["bytes"] / 1e6 / seconds
        print(f"loom data prepare: {seconds:.1f} s wall (incl. start-up), {mbs:.1f} MB/s; peak RSS {mem['peak_rss'] / 2**20:.0f} MiB (process tree)")
        print(f"planted duplicates {planted_dups} (exact {planted['exact']}, near {planted['near']}); removed exact "
              f"{report['removed'].get('exact_duplicate', 0)}, near {report['removed'].get('near_duplicate', 0)}; "
              f"recall {recall:.4f}; removed beyond planted {false_removals}; kept {report['documents_out']} of {planted['unique']} unique")
        print(f"reference: plain read of the same files {ref_mbs:.1f} MB/s")
        print(f"targets: >= 20 MB/s {'PASS' if mbs >= 20 else 'FAIL'}, RSS < 1 GB {'PASS' if mem['peak_rss'] < 2**30 else 'FAIL'}, "
              f"recall >= 0.95 {'PASS' if recall >= 0.95 else 'FAIL'}")
        print(f"ratio loom/plain-read throughput: {mbs / ref_mbs:.3f}  (loom {mbs:.1f} MB/s)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
