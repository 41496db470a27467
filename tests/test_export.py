"""Export (issue 17): GGUF (f16, q8_0) read back with numbers, the chat template identical in training,
in the GGUF and in Ollama's template, an HF folder other engines serve as a chat model, registration
so Loom serves the exported file, and bad input. The source is the session pipeline's 2-layer model
(ChatML template, byte-level BPE, 400 tokens); Qwen2 and grouped-query shapes are built from configs."""

from __future__ import annotations

import errno
import json

import pytest
import torch

from conftest import loom_cli

LLAMA3 = ("{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
          "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


@pytest.fixture
def nano_home(pipeline, loom_home):
    loom_cli("models", "add", "nano", str(pipeline["home"] / "runs" / "nano" / "model"))
    return loom_home


def nano(pipeline):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = pipeline["home"] / "runs" / "nano" / "model"
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


def export_json(*args: str) -> dict:
    return json.loads(loom_cli("export", *args, "--json").stdout)


def greedy(model: str, prompt: str) -> str:
    return loom_cli("generate", model, "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "24", "--no-stats",
                   "--no-chat").stdout


def test_gguf_f16_reads_back_and_serves_like_the_run(nano_home):
    report = export_json("nano", "--quant", "f16", "--verify")
    assert report["registered_as"] == "nano-f16" and report["path"].endswith("exports/nano-f16.gguf")
    assert report["architecture"] == "llama" and report["pre_tokenizer"] == "gpt-2"
    assert report["tensor_types"].keys() == {"F16", "F32"}
    check = report["verify"]
    assert check["max_abs_logit_diff"] < 0.02 and check["top1_agreement"] == 1.0, check
    assert check["template"]["identical"] == check["template"]["conversations"] == 6, check["template"]
    # eos <|endoftext|> and end-of-turn <|im_end|> are both in the file: what llama.cpp stops at
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(nano_home / "exports", gguf_file="nano-f16.gguf")
    assert report["eot_id"] == tok.convert_tokens_to_ids("<|im_end|>") != report["eos_id"] == tok.eos_token_id
    # Loom serves the exported file by its registered name, and it continues text as the run does
    for prompt in ("The shop opens", "客服"):
        assert greedy("nano-f16", prompt) == greedy("nano", prompt)


def test_gguf_q8_0_quantises_what_divides_into_blocks(nano_home, pipeline, tmp_path):
    report = export_json("nano", "--verify")
    assert report["quant"] == "q8_0" and report["registered_as"] == "nano-q8_0"
    # d_model 64 rows quantise; ffn_down's 172-wide rows do not divide into 32-value blocks: f16
    assert report["tensor_types"]["Q8_0"] > 0 and report["tensor_types"]["F16"] == 2
    assert report["verify"]["top1_agreement"] >= 0.95, report["verify"]
    assert report["verify"]["confident_top1_agreement"] >= 0.99, report["verify"]
    # --embeddings-f16: token_embd (and output, when untied) stay f16 beside the q8_0 matrices
    kept = export_json("nano", "--embeddings-f16", "--name", "nano-q8-emb", "--out", str(tmp_path / "emb.gguf"))
    assert kept["tensor_types"]["F16"] > report["tensor_types"]["F16"] and kept["tensor_types"]["Q8_0"] < report["tensor_types"]["Q8_0"]
    refused = loom_cli("export", "nano", "--quant", "f16", "--embeddings-f16", check=False)
    assert refused.returncode == 2 and "--embeddings-f16 applies to q8_0" in refused.stderr
    # a run given by its folder is named after the run (runs/nano/model -> nano-f16), not "model-f16"
    by_path = export_json(str(pipeline["home"] / "runs" / "nano" / "model"), "--quant", "f16")
    assert by_path["registered_as"] == "nano-f16" and by_path["path"].endswith("nano-f16.gguf")


def _tiny(cls_name: str, tokenizer, **extra):
    import transformers

    config_cls = getattr(transformers, cls_name.replace("ForCausalLM", "Config"))
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(config_cls(
        vocab_size=len(tokenizer) + 24, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, **extra)).eval()
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.normal_(p, std=0.5)  # Qwen2's q/k/v biases must survive the trip
    return model


@pytest.mark.parametrize("arch", ["LlamaForCausalLM", "Qwen2ForCausalLM"])
def test_grouped_query_and_qwen2_shapes_round_trip(pipeline, tmp_path, arch):
    from loom.model.export.gguf_file import write_gguf
    from loom.model.export.verify import verify

    _, tok = nano(pipeline)
    model = _tiny(arch, tok, tie_word_embeddings=False)  # 4 query heads over 2 kv heads; a padded vocabulary
    summary = write_gguf(model, tok, tmp_path / "m.gguf", "f16", progress=False)
    assert summary.architecture == {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}[arch]
    assert summary.vocab == len(tok) + 24
    check = verify(model, tok, tmp_path / "m.gguf")
    assert check["max_abs_logit_diff"] < 0.02 and check["top1_agreement"] == 1.0, check


def test_chat_template_is_identical_in_training_gguf_and_ollama(pipeline, tmp_path):
    """(a) the training tokenizer's template, (b) the template read back from the GGUF, rendered by
    Jinja, and (c) the ChatML the Go template writes give the same ids for every probe conversation;
    the tokenizer transformers rebuilds from the GGUF splits them identically too."""
    from transformers import AutoTokenizer

    from loom.model.export import ollama
    from loom.model.export.gguf_file import write_gguf
    from loom.model.export.verify import gguf_template

    model, tok = nano(pipeline)
    default = "You are Loom, a helpful assistant. 你好！"  # a template with a default system prompt, as SmolLM2/Qwen have
    tok.chat_template = ("{% for m in messages %}{% if loop.first and m['role'] != 'system' %}{{ '<|im_start|>system\n"
                         + default + "<|im_end|>\n' }}{% endif %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
                         "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    write_gguf(model, tok, tmp_path / "m.gguf", "f16", progress=False)
    fmt = ollama.detect(tok)
    assert fmt.default_system == default
    template = gguf_template(tmp_path / "m.gguf")
    back = AutoTokenizer.from_pretrained(tmp_path, gguf_file="m.gguf")
    for label, messages, mode in ollama.PROBES:
        trained = ollama.render_hf(tok, messages, mode)
        ids = tok(trained, add_special_tokens=False)["input_ids"]
        assert tok(ollama.render_hf(tok, messages, mode, template), add_special_tokens=False)["input_ids"] == ids, label
        assert tok(ollama.render_chatml(messages, fmt.default_system), add_special_tokens=False)["input_ids"] == ids, label
        assert back(trained, add_special_tokens=False)["input_ids"] == ids, label
    assert ollama.render_hf(tok, *ollama.PROBES[4][1:]).endswith("<|im_start|>assistant\nSoft rain on the roof")


def test_ollama_folder_has_gguf_modelfile_and_command(nano_home):
    proc = loom_cli("export", "nano", "--format", "ollama", "--quant", "f16", "--system", "Answer briefly.")
    folder = nano_home / "exports" / "nano-ollama"
    assert (folder / "nano-f16.gguf").is_file()
    text = (folder / "Modelfile").read_text(encoding="utf-8")
    assert text.startswith("FROM ./nano-f16.gguf\nTEMPLATE \"\"\"")
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|endoftext|>"' in text
    assert 'SYSTEM """Answer briefly."""' in text
    assert f"ollama create nano-ollama -f {folder / 'Modelfile'}" in proc.stderr
    assert json.loads(loom_cli("models", "show", "nano-ollama", "--json").stdout)["backend"] == "gguf"


def test_ollama_refuses_a_template_it_cannot_translate(pipeline, tmp_path):
    from loom.errors import InputError
    from loom.model.export import ollama

    _, tok = nano(pipeline)
    tok.chat_template = LLAMA3
    with pytest.raises(InputError, match="not ChatML"):
        ollama.detect(tok)
    tok.chat_template = None
    with pytest.raises(InputError, match="no chat template"):
        ollama.detect(tok)


def test_hf_folder_carries_template_and_stops_at_end_of_turn(nano_home):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = export_json("nano", "--format", "hf", "--verify")
    folder = nano_home / "exports" / "nano-hf"
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert "<|im_start|>" in config["chat_template"]
    tok = AutoTokenizer.from_pretrained(folder)
    generation = json.loads((folder / "generation_config.json").read_text(encoding="utf-8"))
    assert generation["eos_token_id"] == [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    assert report["verify"]["max_abs_logit_diff"] == 0.0 and report["verify"]["template"]["identical"] == 6
    # plain transformers, no Loom: generation ends at <|im_end|> when the model writes it
    model = AutoModelForCausalLM.from_pretrained(folder)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        model.lm_head.weight[im_end] += 100.0  # make end-of-turn the certain next token
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt")
    ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    out = model.generate(ids, max_new_tokens=20, do_sample=False)
    assert out[0, ids.shape[1]:].tolist() == [im_end]


def test_bad_input_is_named_and_leaves_nothing(nano_home, pipeline, tmp_path, monkeypatch):
    def fails(*args: str, match: str):
        proc = loom_cli("export", *args, check=False)
        assert proc.returncode == 2 and match in proc.stderr, proc.stderr
        return proc

    fails("nano", "--quant", "q4_k", match="unknown quantisation 'q4_k'")
    fails("nano", "--format", "onnx", match="unknown export format 'onnx'")
    fails("nano", "--format", "hf", "--quant", "f16", match="--quant applies to GGUF exports")
    fails("nano", "--out", str(tmp_path / "m.bin"), match="does not end in .gguf")
    fails("minilm", match="export writes language models")
    # a run whose tokenizer files are gone
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        (bare / f).write_bytes((pipeline["home"] / "runs" / "nano" / "model" / f).read_bytes())
    fails(str(bare), match="has no tokenizer")
    # an existing output is kept unless --force
    out = tmp_path / "m.gguf"
    out.write_bytes(b"keep me")
    fails("nano", "--out", str(out), match="already exists")
    assert out.read_bytes() == b"keep me"
    # a char-level tokenizer has no GGUF equivalent: refused before anything is written
    from loom.errors import InputError
    from loom.model.export.gguf_file import write_gguf
    from loom.tokenizer.train import _train_char, wrap
    from loom.config import TokenizerConfig

    model, _ = nano(pipeline)
    char_tok = wrap(_train_char(iter(["abc 你好"] * 3), TokenizerConfig(kind="char", vocab_size=300)))
    with pytest.raises(InputError, match="not byte-level BPE"):
        write_gguf(model, char_tok, tmp_path / "c.gguf", "f16", progress=False)
    assert not (tmp_path / "c.gguf").exists()
    # not a Llama-family architecture
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(char_tok)))
    with pytest.raises(InputError, match="supports Llama-architecture models"):
        write_gguf(gpt2, char_tok, tmp_path / "g.gguf", "f16", progress=False)
    # a disk that fills mid-write: a clear error, no file, no temporary left behind
    import gguf

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full)
    fails("nano", "--out", str(tmp_path / "full.gguf"), match="No space left")
    assert list(tmp_path.glob("*full.gguf*")) == []
    assert "nano-q8_0" not in loom_cli("models", "list", "--json").stdout
