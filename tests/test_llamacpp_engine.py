"""The llama.cpp engine (issue 18) keeps every promise of the server: the session's models exported to
GGUF (f16) and served by a real `loom serve --engine llama.cpp`, driven by the official `openai`
client. Greedy text matches the transformers engine on the same weights; streaming, `n`, seeds, stop
strings, JSON mode, usage, batching, cancellation, the queue bound and the context check all hold."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import openai
import pytest

from conftest import LiveServer, hang_up_after_three_lines, run_loom, statuses_of_five_at_once

pytest.importorskip("llama_cpp", reason="the llama.cpp engine needs llama-cpp-python (a core dependency: `make install` builds it)")

HELLO = [{"role": "user", "content": "the river runs"}]


@pytest.fixture(scope="module")
def server(gguf_home):
    live = LiveServer(gguf_home, "--engine", "llama.cpp", "--preload", "nano-f16")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_greedy_text_matches_the_transformers_engine(gguf_home, client):
    reference = LiveServer(gguf_home, "--engine", "transformers")
    try:
        other = openai.OpenAI(base_url=reference.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        for prompt in ("the river runs", "客服说"):
            kw = dict(model="nano-f16", messages=[{"role": "user", "content": prompt}], max_tokens=16, temperature=0)
            assert client.chat.completions.create(**kw).choices[0].message.content == \
                other.chat.completions.create(**kw).choices[0].message.content
    finally:
        reference.stop()


def test_stream_usage_seed_n_stop_and_json(client):
    kw = dict(model="nano-f16", messages=HELLO, max_tokens=20, temperature=0)
    sync = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == sync.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == sync.usage.completion_tokens > 0
    assert sync.usage.total_tokens == sync.usage.prompt_tokens + sync.usage.completion_tokens
    sampled = dict(model="nano-f16", messages=HELLO, max_tokens=12, temperature=1.0, seed=7)
    a, b = client.chat.completions.create(**sampled), client.chat.completions.create(**sampled)
    assert a.choices[0].message.content == b.choices[0].message.content
    many = client.chat.completions.create(**sampled, n=3)
    assert [c.index for c in many.choices] == [0, 1, 2] and many.choices[0].message.content == a.choices[0].message.content
    full = client.completions.create(model="nano-f16", prompt="the river", max_tokens=30, temperature=0).choices[0].text
    stop = full[2:4]
    cut = client.completions.create(model="nano-f16", prompt="the river", max_tokens=30, temperature=0, stop=[stop]).choices[0]
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"
    from test_serve import TICKET_SCHEMA, check_ticket

    fmt = {"type": "json_schema", "json_schema": {"name": "ticket", "schema": TICKET_SCHEMA}}
    for seed in (0, 1):
        r = client.chat.completions.create(model="nano-f16", messages=[{"role": "user", "content": "give me json"}], max_tokens=60,
                                           temperature=1.0, seed=seed, response_format=fmt)
        assert r.choices[0].finish_reason == "stop"
        check_ticket(r.choices[0].message.content)  # the same grammar engine on the llama.cpp engine


def test_tool_calls_on_the_llama_cpp_engine(client):
    """The same call grammar and parser on llama.cpp (slow-f16: nano's context is too short for a tool
    prompt): a named tool, whole and streamed."""
    from test_tools import ASK, TOOLS, check_arguments

    kw = dict(model="slow-f16", messages=ASK, tools=TOOLS, max_tokens=400, temperature=1.0, seed=2,
              tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = client.chat.completions.create(**kw).choices[0]
    (call,) = choice.message.tool_calls
    assert choice.finish_reason == "tool_calls" and call.function.name == "get_weather"
    check_arguments("get_weather", call.function.arguments)
    streamed = [d for c in client.chat.completions.create(**kw, stream=True) if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert "".join(d.function.arguments for d in streamed) == call.function.arguments


def test_chinese_streams_whole_characters(client):
    """Pieces never split a character: streamed pieces join to exactly the text of the same request
    unstreamed (a split would leave U+FFFD halves in two pieces). Several seeds: the tiny model writes
    Chinese on some of them, and at least one must, or the test would not exercise multi-byte text."""
    chinese = 0
    for seed in range(4):
        kw = dict(model="nano-f16", messages=[{"role": "user", "content": "你好，请介绍一下"}], max_tokens=40, temperature=0.9, seed=seed)
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(**kw, stream=True) if c.choices]
        whole = client.chat.completions.create(**kw).choices[0].message.content
        assert "".join(pieces) == whole
        assert sum(p.count("\ufffd") for p in pieces) == whole.count("\ufffd")
        chinese += any("\u4e00" <= ch <= "\u9fff" for ch in whole)
    assert chinese >= 1


def test_concurrent_streams_share_one_batch(server, client):
    results, errors = [], []

    def one():
        try:
            stream = client.chat.completions.create(model="slow-f16", messages=HELLO, max_tokens=40, temperature=0, stream=True)
            results.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 6 and len(set(results)) == 1
    assert server.metric("loom_max_batch_rows") >= 3


def test_context_disconnect_and_queue_bound(server, client, gguf_home):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="nano-f16", messages=[{"role": "user", "content": "river " * 400}])
    assert "128" in e.value.message and "context" in e.value.message
    hang_up_after_three_lines(server, "slow-f16", HELLO)
    busy = LiveServer(gguf_home, "--engine", "llama.cpp", "--preload", "slow-f16", "--max-batch", "1", "--max-queue", "1")
    try:
        statuses = statuses_of_five_at_once(busy.url, {"model": "slow-f16", "messages": HELLO, "max_tokens": 300, "temperature": 0})
        assert 503 in statuses and 200 in statuses and set(statuses) <= {200, 503}
    finally:
        busy.stop()


def test_f16_widening_is_cached_and_keeps_the_answers(gguf_home, monkeypatch):
    """llama_cpp_weights="f16" (smollm2's setting) runs a q8_0 file as an f16 copy made once under
    cache/gguf-f16/; greedy text is the same, a second load reuses the copy, and a file llama.cpp cannot
    read leaves no copy behind."""
    from gguf import GGUFReader

    from loom import catalog
    from loom.backends.base import Request, Sampling
    from loom.backends.llamacpp import LlamaCppLM, weights_file

    run_loom("export", "nano", "--quant", "q8_0", "--name", "nano-q8", env_home=gguf_home)
    monkeypatch.setenv("LOOM_HOME", str(gguf_home))
    as_is = catalog.resolve("nano-q8")
    widened = as_is.model_copy(update={"llama_cpp_weights": "f16"})
    path = weights_file(widened)
    assert path != as_is.path and "gguf-f16" in path
    types = {t.tensor_type.name for t in GGUFReader(path).tensors}
    assert "Q8_0" not in types and "F16" in types
    made = Path(path).stat().st_mtime_ns
    assert weights_file(widened) == path and Path(path).stat().st_mtime_ns == made  # reused, not rewritten
    assert len(list((gguf_home / "cache" / "gguf-f16").iterdir())) == 1
    request = Request(prompt="the river", sampling=Sampling(max_tokens=12, temperature=0))
    texts = []
    for entry in (as_is, widened):
        lm = LlamaCppLM(entry, max_batch=1)
        texts.append("".join(c.text for c in lm.stream(request)))
        lm.engine.close()
    assert texts[0] == texts[1] and texts[0]
    broken = gguf_home / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(RuntimeError, match="could not rewrite"):
        weights_file(widened.model_copy(update={"path": str(broken)}))
    assert len(list((gguf_home / "cache" / "gguf-f16").iterdir())) == 1  # no half-written copy


def test_a_failure_while_joining_gives_every_kv_slot_back(gguf_home, monkeypatch):
    """Three sequences join in one step and the second one's sampling fails: the batch fails with it,
    and all slots (the admitted first row's, the failing one's, the third's still pending) come back,
    so the engine keeps its full batch width for the next requests."""
    from loom import catalog
    from loom.backends.base import Request, Sampling
    from loom.backends.engine import _Seq
    from loom.backends.llamacpp import LlamaCppLM
    from loom.model.decode import SequenceState

    monkeypatch.setenv("LOOM_HOME", str(gguf_home))
    lm = LlamaCppLM(catalog.resolve("nano-f16"), max_batch=4, isolate=False)  # the runner's slots, in this process
    states = [lm._state(Request(prompt=f"the river {i}", sampling=Sampling(max_tokens=5, temperature=0))) for i in range(3)]
    boom = states[1]
    real_choose = SequenceState.choose

    def choose(self, logits):
        if self is boom:
            raise RuntimeError("sampling failed")
        return real_choose(self, logits)

    monkeypatch.setattr(SequenceState, "choose", choose)
    with pytest.raises(RuntimeError, match="sampling failed"):
        lm.engine._join([_Seq(s, lambda item: None) for s in states])
    lm.engine.runner.reset()  # what the worker does after a failed step
    assert sorted(lm.engine.runner._free_slots) == [0, 1, 2, 3]
    monkeypatch.setattr(SequenceState, "choose", real_choose)
    lm.engine._active.clear()
    assert "".join(c.text for c in lm.stream(Request(prompt="the river", sampling=Sampling(max_tokens=5, temperature=0))))
    lm.engine.close()
