"""Slow end-to-end checks run by CI (`make test-slow`): DDP, compile, quickstart, LoRA (MiniLM and a GGUF chat model),
million-row streaming."""

import json
import os
import shutil
import subprocess
import sys
import time

import psutil
import pytest
import torch

from conftest import REPO, run_loom, write_corpus

pytestmark = pytest.mark.slow


def test_ddp_two_processes_train_and_checkpoint(tmp_path, loom_home):
    corpus = write_corpus(tmp_path / "c.txt", lines=200)
    run_loom("data", "prepare", str(corpus), "--name", "d", env_home=loom_home)
    run_loom("tokenizer", "train", "--data", "d", "--name", "t", "--vocab-size", "400", env_home=loom_home)
    run_loom("data", "tokenize", "d", "--tokenizer", "t", env_home=loom_home)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    args = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "loom", "pretrain",
            "--config", str(REPO / "configs/pretrain/nano.yaml"), "--data", "d", "--name", "ddp",
            "--max-steps", "20", "--save-every", "10", "--threads", "1", "--quiet"]
    env = dict(os.environ, LOOM_HOME=str(loom_home))
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = loom_home / "runs" / "ddp"
    state = torch.load(run / "checkpoints" / "step-00000020" / "trainer_state.pt", weights_only=True)
    assert len(state["samplers"]) == 2 and len(state["torch_rng"]) == 2
    # The two ranks drew different windows (seed + rank).
    assert not torch.equal(state["samplers"][0]["generator"], state["samplers"][1]["generator"])
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [10, 20]  # written once, by rank 0
    assert proc.stdout.count("train loss") == 1  # the summary is printed by rank 0 only
    single = run_loom("pretrain", "--name", "ddp", "--resume", env_home=loom_home, check=False)
    assert single.returncode == 2 and "--nproc_per_node 2" in single.stderr
    # Resume the DDP run for 10 more steps: every rank restores its own sampler.
    resume = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "loom", "pretrain", "--name", "ddp",
              "--resume", "--max-steps", "30", "--threads", "1", "--quiet"]
    proc = subprocess.run(resume,
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "result.json").read_text())["steps"] == 30


def test_sft_under_torchrun_two_processes_on_gloo(tmp_path, loom_home, pipeline):
    """Instruction tuning data-parallel on CPU (DDP over gloo), as `torchrun` runs it on GPUs with NCCL:
    rank 0 alone writes metrics and the model, and the tuned model answers."""
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in [("ping", "pong"), ("hello", "world"), ("red", "blue")]] * 12
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run_loom("models", "add", "nano", str(pipeline["home"] / "runs" / "nano" / "model"), env_home=loom_home)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    args = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "loom", "finetune", "sft", "--base", "nano",
            "--data", str(data), "--name", "ddp-sft", "--no-lora", "--max-steps", "150", "--lr", "3e-3", "--batch-size", "4",
            "--max-len", "64", "--threads", "1", "--quiet"]
    proc = subprocess.run(args, cwd=REPO, env=dict(os.environ, LOOM_HOME=str(loom_home)), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = loom_home / "runs" / "ddp-sft"
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == list(range(10, 151, 10))  # one line per 10 steps: rank 0 only
    assert proc.stdout.count("train loss") == 1
    answer = run_loom("generate", "ddp-sft", "--prompt", "ping", "--temperature", "0", "--max-new-tokens", "8", env_home=loom_home)
    assert "pong" in answer.stdout


def _pairs_file(path):
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in [("ping", "pong"), ("hello", "world"), ("red", "blue")]] * 12
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _losses(run) -> list[float]:
    return [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


# Under torchrun, a run of finetune_sft that dies (both ranks) after its 5th optimizer step: the step-4 checkpoint stays.
_DYING_SFT = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
from conftest import killed_at_optimizer_step
from loom.config import SFTConfig
from loom.train.sft import finetune_sft
cfg = SFTConfig(base="nano", fsdp=True, max_steps=8, save_every=4, eval_every=100, log_every=1, batch_size=4, max_len=64,
                lr=3e-3, threads=1)
try:
    with killed_at_optimizer_step(5):
        finetune_sft(sys.argv[1], "fsdp-lora", cfg, progress=False)
except KeyboardInterrupt:
    sys.exit(0)
"""


def test_sft_fsdp_shards_like_ddp_and_resumes(tmp_path, loom_home, pipeline):
    """FSDP over 2 gloo processes: each rank holds half of every tensor, yet its gradients are DDP's, so
    the loss curve equals DDP's on the same data; the gathered model is saved whole and answers; a
    LoRA run (frozen and trainable weights in one shard unit) killed after a checkpoint resumes under
    FSDP to the loss of an unbroken run. (--fsdp in one process: test_sft's bad-input test.)"""
    data = _pairs_file(tmp_path / "pairs.jsonl")
    run_loom("models", "add", "nano", str(pipeline["home"] / "runs" / "nano" / "model"), env_home=loom_home)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    env = dict(os.environ, LOOM_HOME=str(loom_home))
    common = ["--base", "nano", "--data", str(data), "--no-lora", "--max-steps", "150", "--lr", "3e-3", "--batch-size", "4",
              "--max-len", "64", "--threads", "1", "--quiet"]
    for name, extra in (("ddp", []), ("fsdp", ["--fsdp"])):
        proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "loom", "finetune", "sft", "--name", name,
                               *common, *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    ddp, fsdp = _losses(loom_home / "runs" / "ddp"), _losses(loom_home / "runs" / "fsdp")
    assert json.loads((loom_home / "runs" / "fsdp" / "result.json").read_text())["parallel"] == "fsdp over 2 processes"
    assert len(fsdp) == 15 and fsdp[0] == pytest.approx(ddp[0], rel=1e-4) and fsdp[-1] == pytest.approx(ddp[-1], rel=0.05, abs=0.02)
    answer = run_loom("generate", "fsdp", "--prompt", "ping", "--temperature", "0", "--max-new-tokens", "8", env_home=loom_home)
    assert "pong" in answer.stdout

    script = tmp_path / "dying_sft.py"
    script.write_text(_DYING_SFT, encoding="utf-8")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(data)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = loom_home / "runs" / "fsdp-lora"
    assert (run / "checkpoints" / "step-00000004").is_dir() and not (run / "model").exists()
    lora = ["--base", "nano", "--data", str(data), "--max-steps", "8", "--save-every", "4", "--eval-every", "100", "--log-every", "1",
            "--batch-size", "4", "--max-len", "64", "--lr", "3e-3", "--threads", "1", "--quiet", "--fsdp"]
    for args in (["--name", "fsdp-lora", "--resume"], ["--name", "fsdp-lora-whole", *lora]):
        proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "loom", "finetune", "sft", *args,
                               *(lora[-1:] if "--resume" in args else [])],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    resumed, whole = _losses(run), _losses(loom_home / "runs" / "fsdp-lora-whole")
    assert len(resumed) == len(whole) == 8 and resumed[-1] == pytest.approx(whole[-1], rel=1e-4)
    assert (run / "model" / "adapter_model.safetensors").is_file()
    run_loom("generate", "fsdp-lora", "--prompt", "ping", "--max-new-tokens", "4", env_home=loom_home)  # whole adapters: they load


def test_quickstart_runs_the_whole_pipeline(loom_home):
    proc = run_loom("quickstart", "--steps", "40", env_home=loom_home, timeout=900)
    out = proc.stdout + proc.stderr
    assert "val loss" in out and "model" in out
    assert (loom_home / "runs" / "quickstart" / "model" / "model.safetensors").is_file()
    report = json.loads((loom_home / "datasets" / "quickstart" / "report.json").read_text())
    assert report["chars_by_script"]["Han"] > 1000 and report["chars_by_script"]["Latin"] > 10000


def test_torch_compile_training(tmp_path, loom_home):
    corpus = write_corpus(tmp_path / "c.txt", lines=100)
    run_loom("data", "prepare", str(corpus), "--name", "d", env_home=loom_home)
    run_loom("tokenizer", "train", "--data", "d", "--name", "t", "--kind", "char", env_home=loom_home)
    run_loom("data", "tokenize", "d", "--tokenizer", "t", env_home=loom_home)
    run_loom("pretrain", "--config", str(REPO / "configs/pretrain/nano.yaml"), "--data", "d", "--name", "c",
             "--max-steps", "8", "--compile", "--threads", "1", "--quiet", env_home=loom_home,
             extra_env={"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    result = json.loads((loom_home / "runs" / "c" / "result.json").read_text())
    assert result["steps"] == 8 and result["last"]["loss"] == result["last"]["loss"]
    # The saved weights are the plain module's (no "_orig_mod." prefixes from the compiled wrapper).
    from safetensors import safe_open

    with safe_open(loom_home / "runs" / "c" / "model" / "model.safetensors", "pt") as f:
        assert not any(k.startswith("_orig_mod") for k in f.keys())


def test_lora_minilm_classifier_explains_by_occlusion(tmp_path, loom_home):
    rows = ["text,label"]
    for i in range(40):
        rows.append(f"the service was wonderful and friendly {i},pos" if i % 2 else f"the service was awful and rude {i},neg")
    data = tmp_path / "d.csv"
    data.write_text("\n".join(rows) + "\n")
    fast = tmp_path / "lora.yaml"
    fast.write_text("base: minilm\nlora: true\nepochs: 4\nmin_steps: 40\nbatch_size: 8\nlr: 1.0e-3\nmax_len: 32\n")
    proc = run_loom("finetune", "classify", "--data", str(data), "--config", str(fast), "--name", "lora", "--json", env_home=loom_home)
    assert json.loads(proc.stdout)["train_accuracy"] >= 0.9
    model_dir = loom_home / "runs" / "lora" / "model"
    assert not (model_dir / "adapter_config.json").exists()  # adapters merged: a plain HF folder
    out = json.loads(run_loom("classify", "lora", "the service was wonderful", "--explain", "--json", env_home=loom_home).stdout)[0]
    assert out["label"] == "pos"
    top_words = [w for w, _ in out["explanation"][:2]]
    assert "wonderful" in top_words, out["explanation"]


def test_gguf_chat_model_as_a_lora_classifier_base(tmp_path, loom_home):
    """A registered GGUF model (the bundled smollm2) is fine-tuned from its dequantised HF copy."""
    rows = ["text,label"] + [f"the service was {'wonderful' if i % 2 else 'awful'} {i},{'pos' if i % 2 else 'neg'}" for i in range(24)]
    data = tmp_path / "d.csv"
    data.write_text("\n".join(rows) + "\n")
    fast = tmp_path / "lora.yaml"
    fast.write_text("base: smollm2\nlora: true\nepochs: 2\nmin_steps: 20\nbatch_size: 8\nlr: 1.0e-3\nmax_len: 16\nval_fraction: 0\n")
    summary = json.loads(run_loom("finetune", "classify", "--data", str(data), "--config", str(fast), "--name", "smol-cls",
                                  "--json", env_home=loom_home).stdout)
    assert summary["train_accuracy"] >= 0.9 and summary["base"] == "smollm2"
    cfg = json.loads((loom_home / "runs" / "smol-cls" / "model" / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForSequenceClassification"] and cfg["id2label"] == {"0": "neg", "1": "pos"}


def test_classify_streams_a_million_rows(tmp_path, loom_home):
    small = tmp_path / "train.csv"
    small.write_text("text,label\n" + "".join(f"good item {i},pos\nbad item {i},neg\n" for i in range(50)))
    run_loom("finetune", "classify", "--data", str(small), "--name", "gb", env_home=loom_home)
    big = tmp_path / "big.csv"
    with open(big, "w") as f:
        f.write("text,label\n")
        for i in range(1_000_000):
            f.write("good one\n" if i % 2 else "bad one\n")
    out = tmp_path / "labels.csv"
    env = dict(os.environ, LOOM_HOME=str(loom_home))
    proc = psutil.Popen([sys.executable, "-m", "loom", "classify", "gb", "--file", str(big), "--out", str(out), "--batch-size", "4096"],
                        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, proc.memory_info().rss)
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    with open(out) as f:
        assert sum(1 for _ in f) == 1_000_001
    assert peak < 1.5 * 2**30, f"peak RSS {peak / 2**20:.0f} MiB: the file was not streamed"


def test_default_server_answers_chinese(loom_home):
    """What `make run` does: pull qwen2.5-1.5b (pip, ~1.1 GB once per environment; SHA-256 checked), make it
    the default chat model unless someone chose one, serve configs/serve/default.yaml (which preloads the
    default). Simple Chinese facts come back right (issue 35: >= 9 of 10); smollm2 and minilm still load on
    first use; the startup output names the default, why, and how to switch."""
    import openai

    from conftest import LiveServer

    pulled = run_loom("models", "pull", "qwen2.5-1.5b", "--if-missing", "--default-unless-chosen", env_home=loom_home, timeout=3600)
    assert "default chat model: qwen2.5-1.5b" in pulled.stdout + pulled.stderr
    again = run_loom("models", "pull", "qwen2.5-1.5b", "--if-missing", env_home=loom_home, timeout=120)
    assert "is ready at" in again.stdout + again.stderr  # the second `make run` does not assemble it again
    run_loom("kb", "create", "bike", env_home=loom_home)
    run_loom("kb", "add", "bike", str(REPO / "bench/data/support/ebike/kb"), env_home=loom_home, timeout=600)
    server = LiveServer(loom_home, "--config", str(REPO / "configs/serve/default.yaml"), start_timeout=900)
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
        default = [m.id for m in client.models.list() if (m.model_extra or {}).get("default")]
        assert default == ["qwen2.5-1.5b"], default
        facts = [json.loads(line) for line in (REPO / "bench/data/zh_facts.jsonl").read_text(encoding="utf-8").splitlines()][::3]
        right = []
        for fact in facts:  # 10 of the 30
            answer = client.chat.completions.create(model=default[0], messages=[{"role": "user", "content": fact["question"]}],
                                                    max_tokens=64, temperature=0).choices[0].message.content
            right.append(any(a in answer.replace(" ", "") for a in fact["accept"]) or answer)
        assert sum(r is True for r in right) >= 9, right
        english = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "What is the capital of France?"}],
                                                 max_tokens=20, temperature=0)
        assert "Paris" in english.choices[0].message.content
        as_json = client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "Describe a cat as a JSON object with name and age."}],
            max_tokens=60, temperature=0.7, seed=1, response_format={"type": "json_object"})
        assert isinstance(json.loads(as_json.choices[0].message.content), dict)
        vectors = client.embeddings.create(model="minilm", input=["hello", "hi"])
        assert len(vectors.data[0].embedding) == 384
        assert "Loom is serving at" in server.output() and '"model": "qwen2.5-1.5b"' in server.output()
        assert "default chat model: qwen2.5-1.5b: " in server.output() and "loom models default qwen2.5-0.5b" in server.output()
        # support:KB on this server: the default model reads each passage first (issue 34.2), so questions on
        # the manual's subject that it does not answer are handed off, and answerable ones are still answered
        for question, answerable in [("电瓶多久充满", True), ("I bought it last month and now the screen shows E03, what's wrong", True),
                                     ("你们卖儿童座椅吗？能装在F2上吗", False), ("Do you sell child seats for the F2?", False)]:
            reply = client.chat.completions.create(model="support:bike", messages=[{"role": "user", "content": question}])
            extra = reply.choices[0].model_extra["loom"]
            assert extra["handoff"] is not answerable and extra["reader"]["model"] == "qwen2.5-1.5b", (question, extra)
    finally:
        server.stop()


def test_support_answers_written_by_qwen_over_the_api(loom_home):
    """Issue 14 with the real small model: `support:lumio` (its KB's model qwen2.5-0.5b) answers through
    the OpenAI client with one checked sentence, or the extractive answer; never "1" or "[1]"; an
    out-of-scope question is handed off without asking the model."""
    import openai

    from conftest import LiveServer

    run_loom("models", "pull", "qwen2.5-0.5b", "--if-missing", env_home=loom_home, timeout=3600)
    run_loom("kb", "create", "lumio", "--model", "qwen2.5-0.5b", env_home=loom_home)
    run_loom("kb", "add", "lumio", str(REPO / "bench/data/support/shop/kb"), env_home=loom_home)
    server = LiveServer(loom_home, start_timeout=900)
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
        for question, phrase in [("音箱连不上网怎么办？", "2.4GHz"), ("音箱的唤醒词是什么？", "你好小鹿"),
                                 ("How often should I replace the filter?", "3 months"), ("What does error E2 mean?", "wheel")]:
            choice = client.chat.completions.create(model="support:lumio", messages=[{"role": "user", "content": question}]).choices[0]
            how = choice.model_extra["loom"]
            assert phrase.lower() in choice.message.content.lower() and how["mode"] in ("generated", "extractive"), (question, choice)
            assert choice.message.content.strip() not in ("1", "[1]") and len(choice.message.model_extra["citations"]) == 1
        stock = client.chat.completions.create(model="support:lumio", messages=[{"role": "user", "content": "你们公司的股票代码是多少？"}])
        assert stock.choices[0].model_extra["loom"]["handoff"] and "人工" in stock.choices[0].message.content
    finally:
        server.stop()


def test_soak_two_minutes_of_mixed_traffic(tmp_path):
    """bench/soak.py --minutes 2: chat streams (some hung up), embeddings, KB search, classify and
    support answers against one server; no request may fail unexpectedly and the server must live."""
    env = dict(os.environ, LOOM_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "2", "--clients", "6"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "unexpected errors 0" in proc.stdout and "server alive at the end: True" in proc.stdout
    assert "intended disconnects" in proc.stdout and " 0 requests" not in proc.stdout
