"""Instruction tuning (issue 16): data formats, the assistant-only label mask, packing, the CLI from a
JSONL to a tuned model that stops at end-of-turn, serving a LoRA run by name, merging, `loom eval chat`
and bad input. The base is the session pipeline's 2-layer model (ChatML template, 400-token vocabulary)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import killed_at_optimizer_step, loom_cli

PAIRS = [("ping", "pong"), ("hello", "world"), ("red", "blue"), ("up", "down"), ("cat", "dog"), ("one", "two")]


def write_jsonl(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def pair_rows(repeat: int = 8) -> list[dict]:
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in PAIRS] * repeat


@pytest.fixture
def nano_home(pipeline, loom_home):
    """This test's LOOM_HOME with the pipeline's model registered as 'nano' (tuned runs land here)."""
    loom_cli("models", "add", "nano", str(pipeline["home"] / "runs" / "nano" / "model"))
    return loom_home


def nano_tokenizer(pipeline):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(pipeline["home"] / "runs" / "nano" / "model")


def test_reads_messages_alpaca_sharegpt_and_names_bad_rows(tmp_path):
    from loom.data.chat import read_conversations
    from loom.errors import InputError

    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]},
        {"instruction": "Translate", "input": "猫", "output": "cat"},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}, {"from": "gpt", "value": "d"}]},
        "{not json",
        {"messages": [{"role": "user", "content": "no answer"}]},
        {"conversations": [{"from": "robot", "value": "x"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    ])
    data = read_conversations(path)
    assert len(data.conversations) == 4
    assert dict(data.formats) == {"messages": 2, "alpaca": 1, "sharegpt": 1}
    assert data.conversations[1] == [{"role": "user", "content": "Translate\n\n猫"}, {"role": "assistant", "content": "cat"}]
    assert [m["role"] for m in data.conversations[2]] == ["user", "assistant", "user", "assistant"]
    reasons = dict(data.dropped)
    assert set(reasons) == {4, 5, 6}
    assert "not valid JSON" in reasons[4] and "no assistant turn" in reasons[5] and "'robot'" in reasons[6]

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="is empty"):
        read_conversations(empty)
    with pytest.raises(InputError, match="no usable conversation.*line 1: no assistant turn"):
        read_conversations(write_jsonl(tmp_path / "noanswer.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}]))


@pytest.mark.parametrize("tokenizer_source", ["nano", "smollm2"])
def test_label_mask_is_the_assistant_turns_and_their_end_token(pipeline, tokenizer_source):
    """Token by token: the learnt tokens are exactly each answer followed by <|im_end|>; the system
    prompt, the user turns, the role headers and the newline after <|im_end|> are never learnt."""
    from loom.tokenizer.chat import IGNORE, encode, stop_token_ids

    if tokenizer_source == "nano":
        tok = nano_tokenizer(pipeline)
    else:
        from loom import catalog
        from loom.model.load import load_tokenizer

        tok = load_tokenizer(catalog.get("smollm2"))
    conv = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Where is the river?"},
            {"role": "assistant", "content": "Past the old bridge."}, {"role": "user", "content": "今天天气怎么样"},
            {"role": "assistant", "content": "很好"}]
    example = encode(tok, conv, stop_token_ids(tok))
    end = tok.convert_tokens_to_ids("<|im_end|>")
    learnt = [i for i, label in enumerate(example.labels) if label != IGNORE]
    # two runs of learnt positions, each ending with the end-of-turn token
    runs, current = [], [learnt[0]]
    for i in learnt[1:]:
        if i == current[-1] + 1:
            current.append(i)
        else:
            runs.append(current)
            current = [i]
    runs.append(current)
    assert len(runs) == 2
    for run, answer in zip(runs, ["Past the old bridge.", "很好"]):
        ids = [example.input_ids[i] for i in run]
        assert ids[-1] == end
        assert tok.decode(ids[:-1]) == answer
        assert example.labels[run[-1] + 1] == IGNORE  # the "\n" after <|im_end|> is not learnt
    assert all(example.labels[i] in (IGNORE, example.input_ids[i]) for i in range(len(example.input_ids)))
    prompt_text = tok.decode([t for t, label in zip(example.input_ids, example.labels) if label == IGNORE])
    assert "Where is the river?" in prompt_text and "今天天气怎么样" in prompt_text and "Past" not in prompt_text


def test_packed_rows_give_each_example_its_unpacked_loss(pipeline):
    """Packing puts several examples in one row; position ids restarting at 0 make transformers mask
    attention between them, so the summed loss equals that of the examples one by one."""
    from transformers import AutoModelForCausalLM

    from loom.tokenizer.chat import encode_all
    from loom.train.sft_batches import collate, make_rows, sft_loss_sum

    tok = nano_tokenizer(pipeline)
    model = AutoModelForCausalLM.from_pretrained(pipeline["home"] / "runs" / "nano" / "model", dtype=torch.float32).eval()
    convs = [[{"role": "user", "content": q * (k + 1)}, {"role": "assistant", "content": a}] for k, (q, a) in enumerate(PAIRS)]
    examples, _ = encode_all(tok, convs, 128)
    packed = make_rows(examples, 128, packing=True)
    assert len(packed) < len(examples)
    with torch.no_grad():
        alone = sum(float(sft_loss_sum(model, collate([row], tok.pad_token_id), "cpu")) for row in make_rows(examples, 128, False))
        together = float(sft_loss_sum(model, collate(packed, tok.pad_token_id), "cpu"))
        padded = float(sft_loss_sum(model, collate(make_rows(examples, 128, False), tok.pad_token_id), "cpu"))
    assert together == pytest.approx(alone, rel=1e-4)
    assert padded == pytest.approx(alone, rel=1e-4)


def test_tuned_model_answers_and_stops_at_end_of_turn(nano_home, tmp_path):
    """JSONL -> `loom finetune sft` (all weights) -> greedy answers that are right and end with
    finish_reason 'stop' (the model learnt <|im_end|>), scored by `loom eval chat --json`."""
    data = write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    loom_cli("finetune", "sft", "--base", "nano", "--data", data, "--name", "chatty", "--no-lora", "--max-steps", "200",
             "--lr", "3e-3", "--batch-size", "8", "--max-len", "64", "--quiet")
    base = json.loads(loom_cli("eval", "chat", "nano", "--data", data, "--metric", "exact", "--limit", "6", "--max-tokens", "12", "--json").stdout)
    tuned = json.loads(loom_cli("eval", "chat", "chatty", "--data", data, "--metric", "exact", "--limit", "6", "--max-tokens", "12", "--json").stdout)
    assert tuned["exact"] == 1.0 and base["exact"] == 0.0, (base["results"], tuned["results"])
    assert tuned["examples"] == 6
    from loom.registry import open_backend
    from loom.backends.base import Request, Sampling

    backend = open_backend("chatty")
    try:
        chunks = list(backend.stream(Request(Sampling(max_tokens=20, temperature=0), messages=[{"role": "user", "content": "ping"}])))
    finally:
        backend.close()
    assert "".join(c.text for c in chunks) == "pong" and chunks[-1].finish_reason == "stop"
    run = nano_home / "runs" / "chatty"
    report = json.loads((run / "data.json").read_text())
    assert report["train"]["kept"] + report["val"]["kept"] == 48 and report["train"]["truncated"] == 0
    assert (run / "model" / "config.json").is_file() and not (run / "checkpoints").exists()


def test_lora_run_serves_by_name_and_merges_to_a_plain_folder(nano_home, tmp_path):
    from conftest import LiveServer

    data = write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    loom_cli("finetune", "sft", "--base", "nano", "--data", data, "--name", "lora1", "--max-steps", "200", "--lr", "1e-2",
             "--lora-r", "8", "--batch-size", "8", "--max-len", "64", "--quiet")
    model_dir = nano_home / "runs" / "lora1" / "model"
    assert (model_dir / "adapter_config.json").is_file() and not (model_dir / "config.json").exists()

    with LiveServer(nano_home) as server:
        import openai

        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
        reply = client.chat.completions.create(model="lora1", messages=[{"role": "user", "content": "ping"}], max_tokens=8, temperature=0)
        # a rank-8 adapter on a 64-wide model learns the format and when to stop, not every answer
        assert reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens >= 1
        served_text = reply.choices[0].message.content

    merged = json.loads(loom_cli("models", "merge", "lora1", "--json").stdout)
    assert merged["top1_agreement"] == 1.0 and merged["max_abs_logit_diff"] < 1e-3
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = nano_home / "runs" / "lora1-merged" / "model"
    plain = AutoModelForCausalLM.from_pretrained(folder)  # plain transformers, no peft
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok.apply_chat_template([{"role": "user", "content": "ping"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    out = plain.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
    assert tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True) == served_text


def test_bad_input_is_named_and_leaves_nothing(nano_home, pipeline, tmp_path):
    runs = nano_home / "runs"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    proc = loom_cli("finetune", "sft", "--base", "nano", "--data", str(empty), "--name", "e1", check=False)
    assert proc.returncode == 2 and "is empty" in proc.stderr + proc.stdout

    no_answer = write_jsonl(tmp_path / "q.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}] * 3)
    proc = loom_cli("finetune", "sft", "--base", "nano", "--data", no_answer, "--name", "e2", check=False)
    assert proc.returncode == 2 and "line 1: no assistant turn" in proc.stdout + proc.stderr

    qlora = loom_cli("finetune", "sft", "--base", "nano", "--data", write_jsonl(tmp_path / "p.jsonl", pair_rows(1)),
                     "--name", "e3", "--qlora", "--device", "cpu", check=False)
    assert qlora.returncode == 2 and "--qlora needs a CUDA GPU" in qlora.stdout + qlora.stderr
    fsdp = loom_cli("finetune", "sft", "--base", "nano", "--data", write_jsonl(tmp_path / "p5.jsonl", pair_rows(1)),
                    "--name", "e6", "--fsdp", check=False)  # sharding needs processes to shard across
    assert fsdp.returncode == 2 and "torchrun --nproc_per_node N" in fsdp.stdout + fsdp.stderr

    # a base without a chat template: the error names --template chatml
    plain_dir = tmp_path / "plain"
    shutil.copytree(pipeline["home"] / "runs" / "nano" / "model", plain_dir)
    config = json.loads((plain_dir / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain_dir / "tokenizer_config.json").write_text(json.dumps(config))
    (plain_dir / "chat_template.jinja").unlink(missing_ok=True)
    proc = loom_cli("finetune", "sft", "--base", str(plain_dir), "--data", write_jsonl(tmp_path / "p2.jsonl", pair_rows(1)),
                    "--name", "e4", check=False)
    assert proc.returncode == 2 and "--template chatml" in proc.stdout + proc.stderr

    # too long: truncated with a count, or dropped when nothing is left to learn
    long_rows = [{"messages": [{"role": "user", "content": "river " * 80}, {"role": "assistant", "content": "ok"}]},
                 {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "bridge " * 80}]}] + pair_rows(2)
    out = json.loads(loom_cli("finetune", "sft", "--base", "nano", "--data", write_jsonl(tmp_path / "long.jsonl", long_rows),
                              "--name", "long", "--max-len", "48", "--max-steps", "2", "--json").stdout)
    assert out["examples"]["dropped_too_long"] == 1 and out["examples"]["truncated"] == 1
    assert out["examples"]["length_max"] <= 48
    assert 100 < out["peak_memory_mb"] < 20_000  # reported, so a user can size a preset to a machine

    # a run named like a registered model would replace it when registered: refused before training
    taken = loom_cli("finetune", "sft", "--base", "nano", "--data", write_jsonl(tmp_path / "p4.jsonl", pair_rows(1)),
                     "--name", "nano", "--max-steps", "2", check=False)
    assert taken.returncode == 2 and "already registered" in taken.stdout + taken.stderr

    again = loom_cli("finetune", "sft", "--base", "nano", "--data", write_jsonl(tmp_path / "p3.jsonl", pair_rows(1)),
                     "--name", "long", "--max-steps", "2", check=False)
    assert again.returncode == 2 and "already exists" in again.stdout + again.stderr
    assert sorted(p.name for p in runs.iterdir()) == ["long"]  # the failed runs left nothing behind


def test_resume_continues_from_the_last_checkpoint(nano_home, tmp_path):
    """A run killed after its checkpoint resumes at that step and ends where an unbroken run ends."""
    from loom.config import SFTConfig
    from loom.train.sft import finetune_sft

    data = write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    cfg = SFTConfig(base="nano", max_steps=6, save_every=3, eval_every=100, batch_size=4, max_len=64, lr=1e-3, threads=1)
    full = finetune_sft(data, "whole", cfg, progress=False)

    with killed_at_optimizer_step(5), pytest.raises(KeyboardInterrupt):
        finetune_sft(data, "broken", cfg, progress=False)
    run = nano_home / "runs" / "broken"
    assert (run / "checkpoints" / "step-00000003").is_dir() and not (run / "model").exists()
    resumed = finetune_sft(None, "broken", None, resume=True, progress=False)
    assert resumed["last"]["loss"] == pytest.approx(full["last"]["loss"], rel=1e-4)


def test_ready_instruction_sets_export_with_a_fixed_split(tmp_path):
    def export(name, split, *extra):
        out = tmp_path / f"{name}-{split}.jsonl"
        loom_cli("datasets", "export", name, "--split", split, "--out", str(out), *extra)
        return [json.loads(line)["messages"] for line in out.read_text(encoding="utf-8").splitlines()]

    test, train = export("bbc-topic", "test"), export("bbc-topic", "train")
    assert len(test) == 207 and len(train) == 1870  # one in ten held out, by a hash of the article's opening
    assert {m[-1]["content"] for m in test} == {"business", "entertainment", "politics", "sports", "tech"}
    assert not {m[0]["content"] for m in test} & {m[0]["content"] for m in train}
    zh = export("zh-sentiment-qa", "test", "--limit", "50")
    assert len(zh) == 50 and {m[-1]["content"] for m in zh} == {"正面", "负面"} and "评论" in zh[0][0]["content"]
    # --limit takes a fair sample: the source lists every negative review first, and the first 500 were all negative
    assert 15 <= sum(m[-1]["content"] == "正面" for m in zh) <= 35
    chat = export("chatterbot-chat", "all")
    assert any(len(m) >= 4 for m in chat) and all(m[-1]["role"] == "assistant" for m in chat)


def test_validation_file_and_eval_metrics(nano_home, tmp_path):
    """--val FILE is used as the held-out set; eval chat scores rouge and chrf as well as exact/contains."""
    from loom.apps.eval_chat import score

    data = write_jsonl(tmp_path / "pairs.jsonl", pair_rows(2))
    val = write_jsonl(tmp_path / "val.jsonl", pair_rows(1)[:3])
    out = json.loads(loom_cli("finetune", "sft", "--base", "nano", "--data", data, "--val", val, "--name", "v",
                              "--max-steps", "3", "--max-len", "64", "--json").stdout)
    assert out["val_examples"] == 3 and out["examples"]["kept"] == 12 and "val_loss" in out["last"]
    assert score("exact", "Sport.", "sport") == 1.0 and score("contains", "It is 正面。", "正面") == 1.0
    assert score("rouge", "the cat sat", "the cat sat") == 1.0 and score("chrf", "abc", "xyz") < 0.1
    bad = loom_cli("eval", "chat", "nano", "--data", data, "--metric", "bleu", check=False)
    assert bad.returncode == 2 and "unknown metric" in bad.stdout + bad.stderr


def test_a_batch_split_to_fit_memory_trains_as_the_whole_batch(nano_home, tmp_path, monkeypatch, capsys):
    """--max-batch-tokens splits a micro-batch into passes that fit; the loss is summed over learnt tokens
    and divided by the step's total, so the run ends where the unsplit run ends. On a CPU the budget
    comes from the free memory: too little of it for one row gives a warning naming the fixes."""
    from loom import runtime
    from loom.config import SFTConfig
    from loom.train.sft import finetune_sft
    from loom.train.sft_batches import Row, split_by_tokens
    from loom.train.sft_model import batch_token_budget

    rows = [Row([0] * n, [0] * n) for n in (30, 20, 20, 10)]
    assert [[len(r.input_ids) for r in g] for g in split_by_tokens(rows, 60)] == [[30, 20], [20, 10]]
    assert [len(g) for g in split_by_tokens(rows, 10)] == [1, 1, 1, 1] and split_by_tokens(rows, 0) == [rows]

    data = write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    base = dict(base="nano", lora=False, max_steps=4, eval_every=100, batch_size=8, max_len=64, lr=1e-3, threads=1)
    whole = finetune_sft(data, "whole", SFTConfig(**base), progress=False)
    split = finetune_sft(data, "split", SFTConfig(**base, max_batch_tokens=16), progress=False)  # ~2 rows a pass
    assert split["batch_token_budget"] == 16 and whole["batch_token_budget"] > 10_000  # auto: this machine's free memory
    assert split["last"]["loss"] == pytest.approx(whole["last"]["loss"], rel=1e-4)

    import psutil
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(nano_home / "runs" / "whole" / "model")
    short = psutil.virtual_memory()._replace(available=1_000)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: short)
    cfg = SFTConfig(base="nano", max_len=64)
    assert batch_token_budget(model, cfg, runtime.choose("cpu"), 1) == 64  # one row at a time, at the least
    assert "--gradient-checkpointing" in capsys.readouterr().err
