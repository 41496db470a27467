"""Export benchmark (issue 17): SmolLM2 and a Loom run go out as GGUF and come back as the same model.

For each model, in one process:
1. export f16 and q8_0 with `loom export` (the real code path), each registered under a new name;
2. fidelity on a fixed text set (English, Chinese, code, two chat renderings), source fp32 logits vs
   the export's: read back through transformers' `gguf_file=` dequantiser, and computed by
   llama.cpp itself (logits_all). f16: max absolute logit difference; q8_0: top-1 agreement
   (goal >= 0.99);
3. single-stream decode tok/s: llama.cpp on the q8_0 export (Loom's llama.cpp engine) vs Loom's
   default transformers engine on the source model, alternated, each in a process of its own,
   median of --trials. Target >= 3x;
4. for the chat model, that llama.cpp ends a short answer at end-of-turn (finish "stop" before the
   token limit), the failure exported models are best known for.

Needs the optional extra: pip install llama-cpp-python==0.3.36 (`make bench` builds it).
    python bench/export.py [--steps 300] [--tokens 128] [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROMPT = [{"role": "user", "content": "Write a short story about a fox who learns to sail."}]


def cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "loom", *args], capture_output=True, text=True, env=os.environ)
    if proc.returncode != 0:
        sys.exit(f"loom {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def build_run(steps: int) -> str:
    """A Loom run from raw text: BBC articles -> BPE tokenizer -> the 'tiny' preset (6 x 256)."""
    from loom.datasets import bbc_files

    corpus = Path(os.environ["LOOM_HOME"]) / "bbc.txt"
    corpus.write_text("\n\n".join(text for _, text in bbc_files()), encoding="utf-8")
    cli("data", "prepare", str(corpus), "--name", "bbc")
    cli("tokenizer", "train", "--data", "bbc", "--name", "bbc", "--vocab-size", "8000")
    cli("data", "tokenize", "bbc", "--tokenizer", "bbc")
    cli("pretrain", "--config", str(REPO / "configs/pretrain/tiny.yaml"), "--data", "bbc", "--name", "bbc-tiny",
        "--max-steps", str(steps), "--quiet")
    return "bbc-tiny"


def llama_cpp_logits(path: str, examples: list[list[int]]) -> list:
    import torch
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=512, logits_all=True, n_threads=os.cpu_count(), verbose=False)
    out = []
    for ids in examples:
        llm.reset()
        llm.eval(ids)
        out.append(torch.from_numpy(np.array(llm.scores[: len(ids)], dtype=np.float32)))
    return out


def rate(backend, tokens: int, chat: bool) -> tuple[float, str | None]:
    from loom.backends.base import Request, Sampling

    sampling = Sampling(max_tokens=tokens, temperature=0)
    request = Request(sampling, messages=PROMPT) if chat else Request(sampling, prompt="The government said on Monday that")
    start, produced, finish = time.perf_counter(), 0, None
    for chunk in backend.stream(request):
        produced, finish = chunk.completion_tokens or produced, chunk.finish_reason or finish
    return produced / (time.perf_counter() - start), finish


def rate_in_process(name: str, engine: str, tokens: int, chat: bool) -> float:
    """Decode tok/s of one engine in a fresh process. In one process, llama.cpp decodes 2-4x slower
    once torch has run (both use OpenMP, and share torch's libgomp), which would measure the mix."""
    out = subprocess.run([sys.executable, __file__, "--rate", name, engine, str(tokens), str(int(chat))],
                         capture_output=True, text=True, env=os.environ)
    if out.returncode != 0:
        sys.exit(f"decode run failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def chat_stop(path: str) -> tuple[str, str]:
    """(finish reason, answer) of llama.cpp answering a short question on the export: 'stop' means it
    ended the turn itself, at the end-of-turn token the GGUF names."""
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=1024, verbose=False)
    out = llm.create_chat_completion([{"role": "user", "content": "What is the capital of France?"}], max_tokens=256, temperature=0)
    return out["choices"][0]["finish_reason"], out["choices"][0]["message"]["content"][:60]


def measure(name: str, chat: bool, tokens: int, trials: int) -> dict:
    from loom.model.compare import compare, logits
    from loom.model.export.run import export, plan
    from loom.model.export.verify import examples as text_examples
    from loom.model.load import load_model
    from loom import catalog

    row: dict = {"model": name}
    paths = {}
    for quant in ("f16", "q8_0"):
        t0 = time.perf_counter()
        report = export(plan(name, "gguf", quant, force=True), verify=True, progress=False)
        paths[quant] = report["path"]
        row[f"{quant}_export_s"] = time.perf_counter() - t0
        row[f"{quant}_mb"] = report["bytes"] / 2**20
        row[f"{quant}_transformers"] = report["verify"]
    model, tokenizer = load_model(catalog.resolve(name))
    examples = text_examples(tokenizer, int(model.config.max_position_embeddings))
    reference = logits(model, examples)
    for quant in ("f16", "q8_0"):
        row[f"{quant}_llama_cpp"] = compare(reference, llama_cpp_logits(paths[quant], examples))
    del model
    ours, theirs = [], []
    for _ in range(trials):  # alternated, each engine in a process of its own (as a server runs it)
        theirs.append(rate_in_process(name, "transformers", tokens, chat))
        ours.append(rate_in_process(f"{name}-q8_0", "llama.cpp", tokens, chat))
    row["transformers_tok_s"], row["llama_cpp_tok_s"] = statistics.median(theirs), statistics.median(ours)
    if chat:
        row["chat_stop"] = {quant: chat_stop(paths[quant]) for quant in ("f16", "q8_0")}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="pretraining steps of the Loom run")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--rate", nargs=4, metavar=("MODEL", "ENGINE", "TOKENS", "CHAT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rate:  # a child process: one engine's decode speed
        from loom import registry

        model, engine, tokens, chat = args.rate
        backend = registry.open_backend(model, engine=engine)
        rate(backend, 8, chat == "1")  # warm-up
        print(rate(backend, int(tokens), chat == "1")[0])
        backend.close()
        return
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs llama.cpp: pip install llama-cpp-python==0.3.36 (make bench builds it)")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LOOM_HOME"] = tmp
        rows = [measure("smollm2", True, args.tokens, args.trials), measure(build_run(args.steps), False, args.tokens, args.trials)]
    for r in rows:
        tf16, lf16, tq8, lq8 = r["f16_transformers"], r["f16_llama_cpp"], r["q8_0_transformers"], r["q8_0_llama_cpp"]
        print(f"\n{r['model']}: f16 {r['f16_mb']:.0f} MB ({r['f16_export_s']:.0f} s), q8_0 {r['q8_0_mb']:.0f} MB ({r['q8_0_export_s']:.0f} s)")
        print(f"  f16  max |logit diff| over {tf16['positions']} positions: transformers read-back {tf16['max_abs_logit_diff']:.4f}, "
              f"llama.cpp {lf16['max_abs_logit_diff']:.4f}; top-1 {tf16['top1_agreement']:.4f} / {lf16['top1_agreement']:.4f}")
        print(f"  q8_0 top-1 agreement: transformers read-back {tq8['top1_agreement']:.4f}, llama.cpp {lq8['top1_agreement']:.4f}; "
              f"at the {tq8['confident_positions']} confident positions (fp32 top-2 margin >= 0.5 logit) "
              f"{tq8['confident_top1_agreement']:.4f} / {lq8['confident_top1_agreement']:.4f} (goal >= 0.99); "
              f"max |logit diff| {tq8['max_abs_logit_diff']:.3f} / {lq8['max_abs_logit_diff']:.3f}")
        print(f"  chat template identical in {tf16['template']['identical']}/{tf16['template']['conversations']} conversations")
        print(f"  decode, one stream: llama.cpp q8_0 {r['llama_cpp_tok_s']:.1f} tok/s vs transformers fp32 "
              f"{r['transformers_tok_s']:.1f} tok/s = {r['llama_cpp_tok_s'] / r['transformers_tok_s']:.2f}x")
        for quant, (finish, answer) in r.get("chat_stop", {}).items():
            print(f"  llama.cpp, {quant}: 'What is the capital of France?' -> {answer!r}, finish_reason={finish!r} (256-token limit)")
    worst = min(r["llama_cpp_tok_s"] / r["transformers_tok_s"] for r in rows)
    print(f"\nratio {worst:.2f}x llama.cpp (q8_0 export) vs Loom's transformers engine, the lower of the two models "
          f"(target >= 3x): {'PASS' if worst >= 3 else 'FAIL'}")


if __name__ == "__main__":
    main()
