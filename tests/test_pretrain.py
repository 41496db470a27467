"""`loom pretrain` end to end: outputs, standard checkpoints, exact resume after SIGKILL, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_loom, write_corpus

NANO = str(REPO / "configs/pretrain/nano.yaml")


@pytest.fixture
def tokenized(tmp_path, loom_home):
    corpus = write_corpus(tmp_path / "c.txt", lines=200)
    run_loom("data", "prepare", str(corpus), "--name", "d", env_home=loom_home)
    run_loom("tokenizer", "train", "--data", "d", "--name", "t", "--vocab-size", "400", env_home=loom_home)
    run_loom("data", "tokenize", "d", "--tokenizer", "t", "--val-fraction", "0.1", env_home=loom_home)
    return loom_home


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_pretrain_writes_run_and_registers_model(tokenized):
    home = tokenized
    proc = run_loom("pretrain", "--config", NANO, "--data", "d", "--name", "r", "--max-steps", "30", "--threads", "1", env_home=home)
    run = home / "runs" / "r"
    for name in ("config.yaml", "run.json", "metrics.jsonl", "loss.png", "result.json", "model/model.safetensors",
                 "model/config.json", "model/generation_config.json", "model/tokenizer.json"):
        assert (run / name).is_file(), name
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    metrics = _metrics(run)
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < losses[0] - 0.5, "the model did not learn"
    assert any("val_loss" in m and "val_ppl" in m for m in metrics)
    assert all("tokens_per_s" in m for m in metrics if "loss" in m)
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step-00000030"]  # keep_last of [.., 30]
    assert "train loss" in proc.stdout
    listing = json.loads(run_loom("models", "list", "--json", env_home=home).stdout)
    assert any(m["name"] == "r" and m["backend"] == "hf" for m in listing)


def test_checkpoint_loads_in_plain_transformers_with_same_logits(tokenized):
    home = tokenized
    run_loom("pretrain", "--config", NANO, "--data", "d", "--name", "r", "--max-steps", "10", "--threads", "1", env_home=home)
    model_dir = home / "runs" / "r" / "model"
    # A fresh interpreter that never imports loom.
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(model_dir)!r}); t = AutoTokenizer.from_pretrained({str(model_dir)!r})\n"
        "ids = torch.tensor([t.encode('the river 春眠', add_special_tokens=False)])\n"
        "print(repr(m(input_ids=ids).logits[0, -1, :8].tolist()))\n"
        "assert 'loom' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd="/")
    plain = eval(out.stdout.strip())

    import torch

    from loom.model.load import load_model
    from loom.catalog import resolve

    model, tok = load_model(resolve("r"))
    ids = torch.tensor([tok.encode("the river 春眠", add_special_tokens=False)])
    ours = model(input_ids=ids).logits[0, -1, :8].tolist()
    assert ours == pytest.approx(plain, abs=1e-6)


def test_resume_after_sigkill_matches_unbroken_run(tokenized):
    home = tokenized
    common = ["--config", NANO, "--data", "d", "--max-steps", "150", "--save-every", "20", "--eval-every", "50", "--threads", "1"]
    run_loom("pretrain", *common, "--name", "whole", "--quiet", env_home=home)

    env = dict(os.environ, LOOM_HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-m", "loom", "pretrain", *common, "--name", "broken", "--quiet"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = home / "runs" / "broken" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpts.is_dir() and any(p.name == "step-00000040" for p in ckpts.iterdir())):
        assert proc.poll() is None, "run ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(int(p.name.split("-")[1]) for p in ckpts.iterdir() if p.name.startswith("step-"))
    assert 40 <= killed_at < 150, killed_at
    assert not (home / "runs" / "broken" / "model").exists()

    run_loom("pretrain", "--name", "broken", "--resume", "--quiet", env_home=home)
    whole, broken = _metrics(home / "runs" / "whole"), _metrics(home / "runs" / "broken")
    assert [m["step"] for m in broken] == [m["step"] for m in whole], "duplicate or missing metric lines"
    final_whole = [m for m in whole if "loss" in m][-1]
    final_broken = [m for m in broken if "loss" in m][-1]
    assert final_broken["step"] == 150
    assert abs(final_broken["loss"] - final_whole["loss"]) < 1e-6
    val_whole = [m["val_loss"] for m in whole if "val_loss" in m]
    val_broken = [m["val_loss"] for m in broken if "val_loss" in m]
    assert len(val_whole) == 3 and val_broken == pytest.approx(val_whole, abs=1e-6)


def test_existing_run_needs_resume_and_resume_needs_run(tokenized):
    home = tokenized
    run_loom("pretrain", "--config", NANO, "--data", "d", "--name", "r", "--max-steps", "5", "--threads", "1", env_home=home)
    proc = run_loom("pretrain", "--config", NANO, "--data", "d", "--name", "r", "--max-steps", "5", env_home=home, check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr and "--resume" in proc.stderr
    proc = run_loom("pretrain", "--name", "ghost", "--resume", env_home=home, check=False)
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr


def test_bad_config_and_data(tokenized, tmp_path):
    home = tokenized
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {preset: nano}\ntrain: {learning_rate: 0.1}\n")
    proc = run_loom("pretrain", "--config", str(bad), "--data", "d", "--name", "x", env_home=home, check=False)
    assert proc.returncode == 2 and "unknown key 'train.learning_rate'" in proc.stderr
    proc = run_loom("pretrain", "--config", NANO, "--data", "d", "--name", "x", "--preset", "huge", env_home=home, check=False)
    assert proc.returncode == 2 and "unknown model preset 'huge'" in proc.stderr
    proc = run_loom("pretrain", "--config", NANO, "--data", "nope", "--name", "x", env_home=home, check=False)
    assert proc.returncode == 2 and "dataset 'nope' not found" in proc.stderr
    proc = run_loom("pretrain", "--config", NANO, "--data", "d", "--name", "x", "--seq-len", "100000", env_home=home, check=False)
    assert proc.returncode == 2 and "seq_len" in proc.stderr
    assert not (home / "runs" / "x").exists(), "a failed start left a run folder"


def test_tokenizer_changed_after_tokenize_is_a_mismatch(tokenized):
    home = tokenized
    run_loom("tokenizer", "train", "--data", "d", "--name", "t", "--vocab-size", "350", "--overwrite", env_home=home)
    proc = run_loom("pretrain", "--config", NANO, "--data", "d", "--name", "x", "--max-steps", "5", env_home=home, check=False)
    assert proc.returncode == 2 and "tokenized with tokenizer 't'" in proc.stderr and "loom data tokenize" in proc.stderr


def test_tiny_dataset_shorter_than_a_window(tmp_path, loom_home):
    src = tmp_path / "small.txt"
    src.write_text("Tiny text that is short.\n")
    run_loom("data", "prepare", str(src), "--name", "s", env_home=loom_home)
    run_loom("tokenizer", "train", "--data", "s", "--name", "t", "--kind", "char", env_home=loom_home)
    run_loom("data", "tokenize", "s", "--tokenizer", "t", "--val-fraction", "0", env_home=loom_home)
    proc = run_loom("pretrain", "--config", NANO, "--data", "s", "--name", "x", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "fewer than seq_len + 1" in proc.stderr


def test_bf16_autocast_trains(tokenized):
    home = tokenized
    run_loom("pretrain", "--config", NANO, "--data", "d", "--name", "b", "--max-steps", "6", "--dtype", "bf16",
             "--eval-every", "3", "--threads", "1", env_home=home)
    metrics = _metrics(home / "runs" / "b")
    assert all(m.get("loss", 1.0) == m.get("loss", 1.0) for m in metrics)  # no NaN
    assert metrics[-1]["step"] == 6


def test_cli_start_does_not_import_torch():
    code = "import sys, loom.cli.main; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
