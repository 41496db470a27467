"""`loom eval perplexity` and `loom models list|show|add|rm`."""

import json
import math

from conftest import run_loom


def test_perplexity_on_dataset_and_file(pipeline):
    home = pipeline["home"]
    out = json.loads(run_loom("eval", "perplexity", "nano", "--data", "tiny", "--json", env_home=home).stdout)
    assert out["split"] == "val" and out["tokens"] > 100
    assert math.isclose(out["perplexity"], math.exp(out["loss"]), rel_tol=1e-9)
    # The run's own last validation loss is on the same split (sampled windows): same ballpark.
    last_val = pipeline["run"]["last"]["val_loss"]
    assert abs(out["loss"] - last_val) < 0.5
    f = json.loads(run_loom("eval", "perplexity", "nano", "--data", str(pipeline["corpus"]), "--json", env_home=home).stdout)
    assert f["split"] is None and f["tokens"] > out["tokens"]
    table = run_loom("eval", "perplexity", "nano", "--data", "tiny", env_home=home)
    assert "perplexity" in table.stdout


def test_perplexity_refuses_other_tokenizers_data(pipeline, tmp_path):
    home = pipeline["home"]
    proc = run_loom("eval", "perplexity", "smollm2", "--data", "tiny", env_home=home, check=False, timeout=300)
    assert proc.returncode == 2 and "tokenized with tokenizer 'tok'" in proc.stderr


def test_models_add_show_rm(pipeline, tmp_path):
    home = pipeline["home"]
    model_dir = home / "runs" / "nano" / "model"
    run_loom("models", "add", "mine", str(model_dir), "--description", "a copy", env_home=home)
    shown = json.loads(run_loom("models", "show", "mine", "--json", env_home=home).stdout)
    assert shown["backend"] == "hf" and shown["num_hidden_layers"] == 2 and shown["architecture"] == "LlamaForCausalLM"
    listed = {m["name"]: m for m in json.loads(run_loom("models", "list", "--json", env_home=home).stdout)}
    assert {"smollm2", "nano", "mine"} <= set(listed)
    # a built-in whose optional package is missing keeps its own kind, with the install hint (not "hf/generate")
    piper = listed["piper"]
    assert (piper["backend"], piper["task"]) == ("piper", "speak") and ("loom[speech]" in piper["description"]
                                                                     or piper["path"] != "(package not installed)")
    proc = run_loom("models", "add", "mine", str(model_dir), env_home=home, check=False)
    assert proc.returncode == 2 and "already registered" in proc.stderr
    run_loom("models", "rm", "mine", env_home=home)
    proc = run_loom("models", "rm", "mine", env_home=home, check=False)
    assert proc.returncode == 2 and "not registered" in proc.stderr
    assert model_dir.is_dir()  # rm never deletes files


def test_models_add_bad_paths(tmp_path, loom_home):
    (tmp_path / "fake.gguf").write_bytes(b"NOTGGUF")
    proc = run_loom("models", "add", "x", str(tmp_path / "fake.gguf"), env_home=loom_home, check=False)
    assert proc.returncode == 2 and "not a GGUF file" in proc.stderr
    proc = run_loom("models", "add", "x", str(tmp_path), env_home=loom_home, check=False)
    assert proc.returncode == 2 and "no config.json" in proc.stderr
    proc = run_loom("models", "rm", "smollm2", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "built in" in proc.stderr
