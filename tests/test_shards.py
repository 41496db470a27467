import json

import numpy as np

from conftest import run_loom, write_corpus


def test_tokenize_writes_shards_and_meta(tmp_path, loom_home):
    from transformers import AutoTokenizer

    corpus = write_corpus(tmp_path / "c.txt", lines=100)
    run_loom("data", "prepare", str(corpus), "--name", "c", env_home=loom_home)
    run_loom("tokenizer", "train", "--data", "c", "--name", "t", "--vocab-size", "400", env_home=loom_home)
    out = run_loom("data", "tokenize", "c", "--tokenizer", "t", "--val-fraction", "0.2", "--json", env_home=loom_home)
    meta = json.loads(out.stdout)
    ds = loom_home / "datasets" / "c"
    assert json.loads((ds / "meta.json").read_text()) == meta
    train = np.fromfile(ds / "train.bin", dtype=np.uint16)
    val = np.fromfile(ds / "val.bin", dtype=np.uint16)
    assert meta["dtype"] == "uint16" and len(train) == meta["train_tokens"] and len(val) == meta["val_tokens"]
    assert meta["train_documents"] + meta["val_documents"] == 100 and meta["val_documents"] > 5
    tok = AutoTokenizer.from_pretrained(loom_home / "tokenizers" / "t")
    docs = [json.loads(line)["text"] for line in (ds / "documents.jsonl").read_text().splitlines()]
    # Every document is there, followed by EOS, in order within its split.
    assert (train == tok.eos_token_id).sum() + (val == tok.eos_token_id).sum() == 100
    first_train_doc = tok.decode(train[: int(np.argmax(train == tok.eos_token_id))].tolist())
    assert first_train_doc in docs


def test_tokenize_unknown_tokenizer_and_dataset(tmp_path, loom_home):
    proc = run_loom("data", "tokenize", "nope", "--tokenizer", "t", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "dataset 'nope' not found" in proc.stderr
    corpus = write_corpus(tmp_path / "c.txt", lines=20)
    run_loom("data", "prepare", str(corpus), "--name", "c", env_home=loom_home)
    proc = run_loom("data", "tokenize", "c", "--tokenizer", "t", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "tokenizer 't' not found" in proc.stderr and "loom tokenizer train" in proc.stderr
