"""Shared fixtures. Every test gets its own LOOM_HOME; a session-wide tiny pipeline (200-line
corpus -> BPE tokenizer -> shards -> 2-layer model) is built once for the tests that only read it."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from loom.serve.process import ServerProcess as LiveServer  # noqa: F401  (tests import it from here)

REPO = Path(__file__).resolve().parents[1]

EN_WORDS = ("the river runs past old stone bridges while birds sing over green fields and quiet towns "
            "people walk home slowly under light rain a small boat waits near the shore").split()
ZH_SENTENCES = ["春眠不觉晓，处处闻啼鸟。", "床前明月光，疑是地上霜。", "白日依山尽，黄河入海流。",
                "欲穷千里目，更上一层楼。", "今天天气很好，我们去公园散步。", "这家酒店的服务非常周到。"]


def write_corpus(path: Path, lines: int = 200, seed: int = 0) -> Path:
    """`lines` paragraphs of English and Chinese, blank-line separated, no duplicates."""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(lines):
        if i % 4 == 3:
            paragraphs.append("".join(rng.choice(ZH_SENTENCES) for _ in range(rng.randint(2, 5))) + f"第{i}段。")
        else:
            words = [rng.choice(EN_WORDS) for _ in range(rng.randint(12, 30))]
            paragraphs.append(f"Line {i}: " + " ".join(words) + ".")
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def run_loom(*args: str, env_home: Path, check: bool = True, timeout: float = 600, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """The real entry point, `python -m loom`, in a subprocess with its own LOOM_HOME."""
    env = dict(os.environ, LOOM_HOME=str(env_home), PYTHONUNBUFFERED="1", **(extra_env or {}))
    proc = subprocess.run([sys.executable, "-m", "loom", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"loom {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def pytest_terminal_summary(terminalreporter):
    """One clear line when the browser tests could not run here (not only a quiet 's' among dots)."""
    import shutil

    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "test_web.py" in r.nodeid]
    if skipped and not (shutil.which("chromium") or shutil.which("chromium-browser")):
        terminalreporter.write_line(f"browser tests: {len(skipped)} SKIPPED because Debian's chromium is not installed; "
                                    "`make browser-deps` installs it (root + apt-get), and `make test` tries that first",
                                    yellow=True, bold=True)


@pytest.fixture(autouse=True)
def loom_home(tmp_path, monkeypatch) -> Path:
    """Every test starts with an empty LOOM_HOME of its own."""
    home = tmp_path / "loom_home"
    monkeypatch.setenv("LOOM_HOME", str(home))
    return home


@contextlib.contextmanager
def home_at(home: Path):
    """LOOM_HOME points at `home` inside the block (session fixtures build shared state this way), then back."""
    old = os.environ.get("LOOM_HOME")
    os.environ["LOOM_HOME"] = str(home)
    try:
        yield home
    finally:
        if old is None:
            os.environ.pop("LOOM_HOME", None)
        else:
            os.environ["LOOM_HOME"] = old


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """A finished tiny pipeline: dataset 'tiny' (tokenized), tokenizer 'tok', run 'nano' (20 steps)."""
    home = tmp_path_factory.mktemp("pipeline_home")
    with home_at(home):
        from loom.config import DataConfig, PretrainConfig, TokenizeConfig, TokenizerConfig, load
        from loom.data.prepare import prepare
        from loom.tokenizer.shards import tokenize_dataset
        from loom.tokenizer.train import train_tokenizer
        from loom.train.pretrain import pretrain

        corpus = write_corpus(home.parent / "corpus.txt")
        prepare([str(corpus)], "tiny", DataConfig(), progress=False)
        train_tokenizer("tiny", "tok", TokenizerConfig(vocab_size=400), progress=False)
        tokenize_dataset("tiny", "tok", TokenizeConfig(val_fraction=0.1), progress=False)
        cfg = load(PretrainConfig, REPO / "configs/pretrain/nano.yaml",
                   {"train.max_steps": 20, "train.eval_every": 10, "train.save_every": 10, "train.threads": 1})
        result = pretrain("tiny", "nano", cfg, progress=False)
    return {"home": home, "corpus": corpus, "run": result}


@pytest.fixture
def in_pipeline(pipeline, monkeypatch):
    """Point this test's LOOM_HOME at the shared pipeline (read-only use)."""
    monkeypatch.setenv("LOOM_HOME", str(pipeline["home"]))
    return pipeline


@pytest.fixture(scope="session")
def served_home(pipeline, tmp_path_factory):
    """A LOOM_HOME whose catalog holds 'nano' (the pipeline's 2-layer model, context 128, ChatML template)
    and 'slow' (a random 4-layer model with a 4,096-token context that never stops early: for
    cancellation and overload tests)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    home = tmp_path_factory.mktemp("served_home")
    model_dir = pipeline["home"] / "runs" / "nano" / "model"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)
    slow = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512,
                                        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                                        max_position_embeddings=4096, eos_token_id=None, bos_token_id=None))
    slow.save_pretrained(home / "slow-model")
    tokenizer.save_pretrained(home / "slow-model")
    run_loom("models", "add", "nano", str(model_dir), env_home=home)
    run_loom("models", "add", "slow", str(home / "slow-model"), env_home=home)
    return home


@pytest.fixture(scope="session")
def gguf_home(served_home, tmp_path_factory):
    """served_home's catalog plus nano and slow exported to f16 GGUF (nano-f16, slow-f16): models the
    llama.cpp engine runs in its child process."""
    import shutil

    home = tmp_path_factory.mktemp("gguf_home")
    shutil.copy(served_home / "models.json", home / "models.json")
    for name in ("nano", "slow"):
        run_loom("export", name, "--quant", "f16", env_home=home)
    return home


@contextlib.contextmanager
def killed_at_optimizer_step(n: int):
    """Inside the block, instruction tuning's n-th optimizer step raises KeyboardInterrupt (as Ctrl-C
    or a kill would land), after the checkpoints of the steps before it were written."""
    import loom.train.sft as sft

    original, calls = sft.loop.clip_and_step, {"n": 0}

    def dying(model, optimizer, max_norm):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(model, optimizer, max_norm)

    sft.loop.clip_and_step = dying
    try:
        yield
    finally:
        sft.loop.clip_and_step = original


def loom_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The real CLI entry point (`loom.cli.main.main`) run in this process: same parsing, output and
    exit codes as `python -m loom`, without paying for a new interpreter and model loads per call.
    Uses the LOOM_HOME the test's environment points at."""
    import contextlib
    import io

    from loom.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    old_argv, code = sys.argv, 0
    sys.argv = ["loom", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old_argv
    proc = subprocess.CompletedProcess(["loom", *args], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"loom {' '.join(args)} exited {code}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def api_home(served_home, tmp_path_factory):
    """A LOOM_HOME with something behind every /v1 route: the served catalog (nano, slow), a tf-idf
    classifier 'reviews', a knowledge base 'shop' holding 'policy.md', its graph 'shop' (plus cities.txt), a recommender 'shop', a run 'nano'
    with metrics and an evaluation report 'demo'. Tests copy it (copy_home) before starting a server on it."""
    import json
    import shutil

    home = tmp_path_factory.mktemp("api_home")
    copy_catalog(served_home, home)
    data = home / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"great lovely room {i},pos\nawful dirty room {i},neg\n" for i in range(10)),
                    encoding="utf-8")
    old = os.environ.get("LOOM_HOME")
    os.environ["LOOM_HOME"] = str(home)
    try:
        loom_cli("finetune", "classify", "--data", str(data), "--base", "tfidf", "--name", "reviews")
        from loom.apps.support.store import KnowledgeBase

        KnowledgeBase.create("shop", "minilm").add_text("policy.md", "# Returns\n\nReturns are free within 30 days.\n")
        clicks = home / "clicks.csv"
        clicks.write_text("user,item\n" + "".join(f"u{u},i{(u + k) % 7}\n" for u in range(12) for k in range(3)), encoding="utf-8")
        loom_cli("recommend", "train", "--data", str(clicks), "--model", "pop", "--name", "shop")
        from loom.apps.kg.build import build_from_kb

        build_from_kb("shop")  # a graph 'shop' (empty of facts: the policy names no entities)
        from loom.apps.kg.build import add_document
        from loom.apps.kg.store import Graph

        add_document(Graph.open("shop"), "cities.txt", ["Paris is the capital of France."])
    finally:
        os.environ["LOOM_HOME"] = old or ""
    run = home / "runs" / "nano"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 5.0}\n{"step": 1, "val_loss": 5.1}\n', encoding="utf-8")
    report = home / "evals" / "demo"
    report.mkdir(parents=True)
    (report / "report.json").write_text(json.dumps({"examples": 2, "accuracy": 1.0, "macro_f1": 1.0}), encoding="utf-8")
    (report / "confusion.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return home


def copy_catalog(src_home: Path, dest_home: Path, names=("nano", "slow")) -> None:
    """The session's served models only: other tests register runs (e.g. 'reviews') in served_home,
    and a copied entry pointing at them would make the same name a registered model here."""
    import json

    catalog = json.loads((src_home / "models.json").read_text(encoding="utf-8"))
    dest_home.mkdir(parents=True, exist_ok=True)
    (dest_home / "models.json").write_text(json.dumps({k: v for k, v in catalog.items() if k in names}), encoding="utf-8")


def copy_home(template: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(template, dest, ignore=shutil.ignore_patterns("server-*.log"))
    return dest


def hang_up_after_three_lines(server, model: str, messages: list[dict]) -> None:
    """Open a long stream, read 3 lines, hang up; wait (up to 20 s) until the server counts one more
    cancelled sequence, and assert it did."""
    import time

    import httpx

    before = server.metric("loom_cancelled_sequences_total")
    body = {"model": model, "messages": messages, "max_tokens": 3000, "temperature": 0, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        for _ in zip(range(3), r.iter_lines()):
            pass
    deadline = time.time() + 20
    while time.time() < deadline and server.metric("loom_cancelled_sequences_total") == before:
        time.sleep(0.1)
    assert server.metric("loom_cancelled_sequences_total") == before + 1


def statuses_of_five_at_once(url: str, body: dict, check=None) -> list[int]:
    """POST the same chat body from 5 threads at once; the status codes (check(response) runs on each)."""
    import threading

    import httpx

    statuses = []

    def one():
        r = httpx.post(url + "/v1/chat/completions", timeout=120, json=body)
        statuses.append(r.status_code)
        if check:
            check(r)

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


async def asgi_body(receive) -> bytes:
    """The whole request body an ASGI app receives (fake upstream engines in tests), however it is chunked."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
