"""The OpenAI-compatible server, driven by the official `openai` client against a real `loom serve`."""

from __future__ import annotations

import base64
import json
import math
import threading

import httpx
import numpy as np
import openai
import pytest

from conftest import REPO, LiveServer, hang_up_after_three_lines


@pytest.fixture(scope="module")
def server(served_home):
    live = LiveServer(served_home, "--preload", "nano")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


HELLO = [{"role": "user", "content": "the river runs"}]


def test_chat_sync_usage_and_length(client):
    r = client.chat.completions.create(model="nano", messages=HELLO, max_tokens=5, temperature=0)
    choice = r.choices[0]
    assert r.object == "chat.completion" and choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert r.usage.completion_tokens <= 5 and r.usage.prompt_tokens > 3
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert choice.finish_reason in ("stop", "length")
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 5
    # max_completion_tokens is the newer spelling of the same limit
    r2 = client.chat.completions.create(model="nano", messages=HELLO, max_completion_tokens=5, temperature=0)
    assert r2.choices[0].message.content == choice.message.content


def test_chat_stream_matches_sync_and_reports_usage(client):
    sync = client.chat.completions.create(model="nano", messages=HELLO, max_tokens=20, temperature=0)
    chunks = list(client.chat.completions.create(model="nano", messages=HELLO, max_tokens=20, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == sync.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [sync.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == sync.usage.completion_tokens


def test_seed_n_and_stop(client):
    kw = dict(model="nano", messages=HELLO, max_tokens=12, temperature=1.0, seed=7)
    a, b = client.chat.completions.create(**kw), client.chat.completions.create(**kw)
    assert a.choices[0].message.content == b.choices[0].message.content
    many = client.chat.completions.create(**kw, n=3)
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert many.choices[0].message.content == a.choices[0].message.content  # choice i uses seed + i
    streamed = list(client.chat.completions.create(**kw, n=2, stream=True))
    texts = ["".join(c.choices[0].delta.content or "" for c in streamed if c.choices and c.choices[0].index == i) for i in (0, 1)]
    assert texts == [c.message.content for c in many.choices[:2]]
    full = client.completions.create(model="nano", prompt="the river", max_tokens=30, temperature=0).choices[0].text
    assert len(full) > 4
    stop = full[2:4]
    cut = client.completions.create(model="nano", prompt="the river", max_tokens=30, temperature=0, stop=[stop]).choices[0]
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_json_mode_output_parses(client, seed):
    r = client.chat.completions.create(model="nano", messages=[{"role": "user", "content": "give me json"}], max_tokens=40,
                                       temperature=1.0, seed=seed, response_format={"type": "json_object"})
    choice = r.choices[0]
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.message.content), dict)  # an untrained model, still valid JSON
    else:  # the budget ran out inside the object: cut there, as OpenAI's is, never closed by hand
        assert choice.finish_reason == "length" and r.usage.completion_tokens == 40 and choice.message.content.startswith("{")


TICKET_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9},
                                                  "ok": {"type": "boolean"}, "level": {"enum": ["low", "high"]}},
                 "required": ["n", "ok", "level"], "additionalProperties": False}


def check_ticket(text: str) -> None:
    ticket = json.loads(text)
    assert set(ticket) == {"n", "ok", "level"} and 1 <= ticket["n"] <= 9 and isinstance(ticket["ok"], bool)
    assert ticket["level"] in ("low", "high")


def test_json_schema_is_enforced_and_parse_takes_a_pydantic_model(client):
    """An untrained model writes exactly the schema (keys, integer range, enum), streamed or not, any
    seed; the openai SDK's parse() with a pydantic model gets a parsed object; a keyword that cannot be
    enforced is a 400 naming it."""
    from typing import Literal

    from pydantic import BaseModel, Field

    fmt = {"type": "json_schema", "json_schema": {"name": "ticket", "schema": TICKET_SCHEMA, "strict": True}}
    for seed in range(4):
        kw = dict(model="nano", messages=[{"role": "user", "content": "ticket"}], max_tokens=60, temperature=1.0, seed=seed,
                  response_format=fmt)
        whole = client.chat.completions.create(**kw).choices[0]
        assert whole.finish_reason == "stop"
        check_ticket(whole.message.content)
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**kw, stream=True) if c.choices)
        assert streamed == whole.message.content

    class Ticket(BaseModel):
        n: int = Field(ge=1, le=9)
        ok: bool
        level: Literal["low", "high"]

    parsed = client.chat.completions.parse(model="nano", messages=[{"role": "user", "content": "ticket"}], max_tokens=60,
                                           response_format=Ticket).choices[0].message.parsed
    assert isinstance(parsed, Ticket) and 1 <= parsed.n <= 9
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "if": {"required": ["a"]}, "then": {}}}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="nano", messages=[{"role": "user", "content": "x"}], response_format=bad)
    assert "if" in e.value.message and "then" in e.value.message
    assert e.value.param == "response_format.json_schema.schema"


def test_completions_text_and_token_ids(client):
    r = client.completions.create(model="nano", prompt="the river", max_tokens=6, temperature=0)
    assert r.object == "text_completion" and r.usage.completion_tokens <= 6
    ids = client.completions.create(model="nano", prompt=[5, 6, 7], max_tokens=3, temperature=0)
    assert ids.usage.prompt_tokens == 3
    streamed = "".join(c.choices[0].text for c in client.completions.create(model="nano", prompt="the river", max_tokens=6,
                                                                            temperature=0, stream=True))
    assert streamed == r.choices[0].text


def test_embeddings_float_base64_and_token_ids(client):
    texts = ["a cat sits on the mat", "a kitten rests on a rug", "the stock market fell sharply"]
    as_b64 = client.embeddings.create(model="minilm", input=texts)  # the client asks for base64 by default
    vecs = np.array([d.embedding for d in as_b64.data])
    assert vecs.shape == (3, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2
    floats = client.embeddings.create(model="minilm", input=texts[0], encoding_format="float")
    assert np.allclose(floats.data[0].embedding, vecs[0], atol=1e-6)
    raw = httpx.post(str(client.base_url) + "embeddings", json={"model": "minilm", "input": "x", "encoding_format": "base64"}).json()
    assert len(base64.b64decode(raw["data"][0]["embedding"])) == 384 * 4
    ids = client.embeddings.create(model="minilm", input=[[1037, 4937]], encoding_format="float")  # "a cat" in MiniLM's vocab
    plain = client.embeddings.create(model="minilm", input="a cat", encoding_format="float")
    assert np.allclose(ids.data[0].embedding, plain.data[0].embedding, atol=1e-5)


def test_models_health_metrics(server, client):
    names = {m.id for m in client.models.list()}
    assert {"nano", "slow", "smollm2", "minilm"} <= names
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert server.metric("loom_completion_tokens_total") > 0


def test_batching_concurrent_streams(server, client):
    results, errors = [], []

    def one(i):
        try:
            stream = client.chat.completions.create(model="slow", messages=HELLO, max_tokens=40, temperature=0, stream=True)
            results.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 6
    assert len(set(results)) == 1  # greedy: batched rows give the same text as each other
    assert server.metric("loom_max_batch_rows") >= 3  # they ran as one batch, not one after another


def test_errors_have_openai_shape(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert "no-such-model" in e.value.message and e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="nano", messages=HELLO, temperature=7)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="nano", messages=[{"role": "user", "content": "river " * 400}])
    assert "128" in e.value.message and "context" in e.value.message  # names the context size and the prompt's
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="nano", input="x")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="minilm", messages=HELLO)


def test_too_large_body_is_413(server):
    r = httpx.post(server.url + "/v1/embeddings", content=b"x" * (5 * 1024 * 1024), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_disconnect_stops_generation(server):
    hang_up_after_three_lines(server, "slow", HELLO)
    assert server.metric("loom_active_sequences") == 0


def test_classifier_served(served_home, tmp_path, server, client):
    from conftest import run_loom

    data = tmp_path / "reviews.csv"
    rows = ["text,label"] + [f"great lovely room {i},pos" for i in range(10)] + [f"awful dirty room {i},neg" for i in range(10)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run_loom("finetune", "classify", "--data", str(data), "--base", "tfidf", "--name", "reviews", env_home=served_home)
    r = client.post("/classify", cast_to=object, body={"model": "reviews", "input": ["lovely great room", "dirty awful room"]})
    assert [d["label"] for d in r["data"]] == ["pos", "neg"]
    assert math.isclose(sum(r["data"][0]["probabilities"].values()), 1.0, rel_tol=1e-6)


def test_ui_strings_have_each_key_once_in_both_languages():
    """A key written twice in one language silently keeps the last value (the Chinese writing
    button once read 训练 "training" instead of 运行 "run")."""
    import collections
    import re

    source = (REPO / "src" / "loom" / "serve" / "web" / "i18n.js").read_text(encoding="utf-8")
    en, zh = source[source.index("en: {"):source.index("zh: {")], source[source.index("zh: {"):source.index("};")]
    keys = [re.findall(r"(?:^|[{,])\s*(\w+):\s*[\"']", part, re.M) for part in (en, zh)]
    for found in keys:
        assert [k for k, n in collections.Counter(found).items() if n > 1] == []
    assert sorted(keys[0]) == sorted(keys[1])
