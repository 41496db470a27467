"""logprobs on chat and completions (issue 30, item 4), through a real `loom serve` and the official
openai client, on both engines: each token's logprob is the log-softmax of the model's raw logits at
that step (checked against a direct forward pass), its alternatives are the top-k in order, tokens
join to the text (Chinese too), streamed equals unstreamed, and bad values are 400s naming the field."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

from conftest import LiveServer

PROMPT = "the river"


@pytest.fixture(scope="module", params=["transformers", "llama.cpp"])
def served(request, served_home, gguf_home):
    if request.param == "llama.cpp":
        pytest.importorskip("llama_cpp")
        server, model = LiveServer(gguf_home, "--engine", "llama.cpp", "--preload", "nano-f16"), "nano-f16"
    else:
        server, model = LiveServer(served_home, "--preload", "nano"), "nano"
    yield server, model, request.param
    server.stop()


def direct_logprobs(served_home, prompt: str, k: int):
    """log-softmax of the nano model's next-token logits after `prompt`, by transformers directly."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loom import catalog
    from conftest import home_at

    with home_at(served_home):
        path = catalog.resolve("nano").path
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = tok.encode(prompt, add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1].float()
    values, idx = torch.topk(torch.log_softmax(logits, -1), k)
    return [(tok.decode([i]), v) for i, v in zip(idx.tolist(), values.tolist())]


def test_completion_logprobs_agree_with_a_direct_log_softmax(served, served_home):
    server, model, engine = served
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    choice = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=0, logprobs=3).choices[0]
    lp = choice.logprobs
    assert "".join(lp.tokens) == choice.text and len(lp.token_logprobs) == len(lp.tokens) >= 1
    assert lp.text_offset[0] == 0 and lp.text_offset[1] == len(lp.tokens[0])
    direct = direct_logprobs(served_home, PROMPT, 3)
    served_top = list(lp.top_logprobs[0].items())
    tolerance = 1e-3 if engine == "transformers" else 0.05  # llama.cpp runs f16 weights
    assert [t for t, _ in served_top] == [t for t, _ in direct]
    for (_, mine), (_, ref) in zip(served_top, direct):
        assert abs(mine - ref) < tolerance
    assert abs(lp.token_logprobs[0] - direct[0][1]) < tolerance  # greedy: the chosen token is the best one


def test_chat_logprobs_join_stream_and_reject_bad_values(served):
    server, model, _ = served
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    for text in ("the river runs", "你好，请介绍一下"):
        kw = dict(model=model, messages=[{"role": "user", "content": text}], max_tokens=24, temperature=0.9, seed=3,
                  logprobs=True, top_logprobs=2)
        whole = client.chat.completions.create(**kw).choices[0]
        tokens = whole.logprobs.content
        assert "".join(t.token for t in tokens) == whole.message.content
        for t in tokens:
            assert t.logprob <= 0 and bytes(t.bytes).decode("utf-8") == t.token and len(t.top_logprobs) == 2
            assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob >= t.logprob - 50
            assert not math.isnan(t.logprob)
        streamed = [t for c in client.chat.completions.create(**kw, stream=True) if c.choices and c.choices[0].logprobs
                    for t in c.choices[0].logprobs.content]
        assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in tokens]
    plain = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert plain.choices[0].logprobs is None
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    for bad, field in (({"logprobs": True, "top_logprobs": 21}, "top_logprobs"), ({"top_logprobs": 2}, "top_logprobs")):
        r = httpx.post(server.url + "/v1/chat/completions", json=body | bad, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
    r = httpx.post(server.url + "/v1/completions", json={"model": model, "prompt": "x", "logprobs": 21}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "logprobs"


def test_a_stop_string_cuts_the_logprobs_with_the_text(served):
    server, model, _ = served
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    full = client.completions.create(model=model, prompt=PROMPT, max_tokens=30, temperature=0).choices[0].text
    stop = full[5:7]
    cut = client.completions.create(model=model, prompt=PROMPT, max_tokens=30, temperature=0, stop=[stop], logprobs=1).choices[0]
    assert cut.text == full[: full.index(stop)] and "".join(cut.logprobs.tokens) == cut.text
