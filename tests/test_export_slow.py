"""Export with the real chat models (slow suite): SmolLM2 and Qwen2.5 to Ollama folders, their Go
templates rendered by Go's own text/template (Debian's golang-go; `make test-slow` installs it) and
compared token for token with the training tokenizer's Jinja template and the one inside the GGUF."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, run_loom

pytestmark = pytest.mark.slow


def go_render(template: str, conversations: list[list[dict]], tmp_path) -> list[str]:
    env = dict(os.environ, GOCACHE=str(tmp_path / "gocache"), GOPATH=str(tmp_path / "gopath"), GOFLAGS="", GO111MODULE="auto")
    proc = subprocess.run(["go", "run", str(REPO / "tests/assets/ollama_render.go")], input=json.dumps(
        {"template": template, "conversations": conversations}), capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("model", ["smollm2", "qwen2.5-0.5b"])
def test_ollama_export_renders_like_training_in_go(model, loom_home, tmp_path):
    if shutil.which("go") is None:
        pytest.skip("Go is not installed (apt-get install golang-go); `make test-slow` installs it as root")
    from transformers import AutoTokenizer

    from loom.model.export.ollama import PROBES, render_hf
    from loom.model.export.verify import gguf_template

    if model == "qwen2.5-0.5b":
        run_loom("models", "pull", model, "--if-missing", env_home=loom_home, timeout=3600)
    report = json.loads(run_loom("export", model, "--format", "ollama", "--verify", "--json", env_home=loom_home,
                                 timeout=1800).stdout)
    check = report["verify"]
    assert check["template"]["identical"] == len(PROBES), check["template"]
    assert check["top1_agreement"] >= 0.95, check  # q8_0; bench/export.py tracks the >= 0.99 goal
    folder = loom_home / "exports" / f"{model}-ollama"
    template = re.search(r'TEMPLATE """(.*?)"""', (folder / "Modelfile").read_text(encoding="utf-8"), re.S).group(1)
    # the training tokenizer: the dequantised HF copy Loom fine-tunes from
    trained = AutoTokenizer.from_pretrained(next((loom_home / "cache" / "gguf").iterdir()))
    jinja = gguf_template(folder / report["gguf"].rsplit("/", 1)[1])
    rendered = go_render(template, [m for _, m, _ in PROBES], tmp_path)
    for (label, messages, mode), go_text in zip(PROBES, rendered):
        ids = trained(render_hf(trained, messages, mode), add_special_tokens=False)["input_ids"]
        assert trained(render_hf(trained, messages, mode, jinja), add_special_tokens=False)["input_ids"] == ids, label
        assert trained(go_text, add_special_tokens=False)["input_ids"] == ids, (label, go_text)
