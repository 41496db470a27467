"""Tokenizer training through the CLI, plain-transformers loading, and exact round trips."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from conftest import run_loom, write_corpus

# Every code point except surrogates: CJK, emoji, combining marks, controls, private use.
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
cjk_emoji = st.text(alphabet=st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
    st.characters(min_codepoint=0x0300, max_codepoint=0x036F),  # combining marks
    st.characters(min_codepoint=0x00, max_codepoint=0x1F),  # control characters
    st.sampled_from(list("ab \n\t")),
), max_size=100)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    from transformers import AutoTokenizer

    home = tmp_path_factory.mktemp("tok_home")
    corpus = write_corpus(home / "c.txt", lines=120)
    run_loom("data", "prepare", str(corpus), "--name", "c", env_home=home)
    run_loom("tokenizer", "train", "--data", "c", "--name", "bpe", "--vocab-size", "500", env_home=home)
    run_loom("tokenizer", "train", "--data", "c", "--name", "chars", "--kind", "char", env_home=home)
    # Plain transformers, no Loom import: the folders are standard.
    return {kind: AutoTokenizer.from_pretrained(home / "tokenizers" / kind) for kind in ("bpe", "chars")} | {"home": home}


@pytest.mark.parametrize("kind", ["bpe", "chars"])
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(any_text, cjk_emoji))
def test_round_trip_is_exact(tokenizers, kind, text):
    tok = tokenizers[kind]
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


@pytest.mark.parametrize("kind", ["bpe", "chars"])
def test_edge_strings(tokenizers, kind):
    tok = tokenizers[kind]
    for text in ["", " ", "\x00", "e\u0301", "👩‍👩‍👧", "\U0010FFFF", "床前明月光\r\n", "  two  spaces "]:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_saved_folder_has_specials_and_chat_template(tokenizers):
    tok = tokenizers["bpe"]
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert 400 < len(tok) <= 500
    text = tok.apply_chat_template([{"role": "user", "content": "你好"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
    assert tok.convert_tokens_to_ids("<|im_end|>") != tok.unk_token_id
    meta = json.loads((tokenizers["home"] / "tokenizers" / "bpe" / "loom_tokenizer.json").read_text())
    assert meta["kind"] == "bpe" and meta["dataset"] == "c"


def test_char_tokenizer_is_one_token_per_known_character(tokenizers):
    tok = tokenizers["chars"]
    assert len(tok.encode("春眠不觉晓", add_special_tokens=False)) == 5
    # An unseen character falls back to its UTF-8 bytes.
    assert len(tok.encode("龘", add_special_tokens=False)) == 3


def test_bad_tokenizer_requests(tokenizers, tmp_path):
    home = tokenizers["home"]
    proc = run_loom("tokenizer", "train", "--data", "nope", "--name", "x", env_home=home, check=False)
    assert proc.returncode == 2 and "dataset 'nope' not found" in proc.stderr and "existing datasets: c" in proc.stderr
    proc = run_loom("tokenizer", "train", "--data", "c", "--name", "bpe", env_home=home, check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    proc = run_loom("tokenizer", "train", "--data", "c", "--name", "v", "--vocab-size", "10", env_home=home, check=False)
    assert proc.returncode == 2 and "vocab_size" in proc.stderr
    proc = run_loom("tokenizer", "train", "--data", "c", "--name", "../evil", env_home=home, check=False)
    assert proc.returncode == 2 and "invalid tokenizer name" in proc.stderr
