"""A remote engine that misbehaves: a fake OpenAI-compatible upstream (a small ASGI app in this file,
served by uvicorn in a thread) that hangs, answers 500, sends malformed SSE, cuts a stream halfway or
trickles forever. Loom's `openai` backend turns each into a clear 502/504, never outlasts the model's
timeout, and frees its slot: the server runs with one slot per model, so a leaked one would block the
healthy request at the end."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest

from conftest import LiveServer, asgi_body, run_loom

TIMEOUT = 2.0  # seconds, the registered models' --timeout
MARGIN = 3.0  # process and scheduling slack on a loaded 2-core machine


def _event(text: str | None, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}
    return f"data: {json.dumps({'choices': [choice]})}\n\n".encode()


async def upstream(scope, receive, send):
    """model 'ok' answers; the others fail the way their name says."""
    if scope["type"] != "http":
        return
    body = await asgi_body(receive)
    mode = json.loads(body or b"{}").get("model", "ok")
    sse = [(b"content-type", b"text/event-stream")]
    if mode == "hang":
        await asyncio.sleep(60)
    if mode == "error500":
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"error": {"message": "engine exploded"}}'})
        return
    await send({"type": "http.response.start", "status": 200, "headers": sse})
    if mode == "badsse":
        await send({"type": "http.response.body", "body": b"data: {this is not json\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        return
    await send({"type": "http.response.body", "body": _event("Hel"), "more_body": True})
    if mode == "cut":
        raise RuntimeError("connection cut halfway")  # uvicorn drops the connection mid-body
    if mode == "trickle":
        for _ in range(600):
            await asyncio.sleep(0.25)
            await send({"type": "http.response.body", "body": b": still here\n", "more_body": True})
    await send({"type": "http.response.body", "body": _event("lo", "stop") + b"data: [DONE]\n\n"})


@pytest.fixture(scope="module")
def fake_engine():
    import uvicorn

    from loom.serve.process import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(upstream, host="127.0.0.1", port=port, log_level="critical",
                                               timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def loom(fake_engine, tmp_path_factory):
    home = tmp_path_factory.mktemp("remote_faults")
    for mode in ("ok", "hang", "error500", "badsse", "cut", "trickle"):
        run_loom("models", "add", f"r-{mode}", fake_engine, "--backend", "openai", "--remote-model", mode,
                 "--timeout", str(TIMEOUT), env_home=home)
    server = LiveServer(home, "--max-batch", "1")  # one slot per remote model
    yield server
    server.stop()


ASK = [{"role": "user", "content": "hi"}]
EXPECTED = {"hang": 504, "error500": 502, "badsse": 502, "cut": 502, "trickle": 504}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_each_fault_is_a_clear_gateway_error_in_time(loom, mode):
    client = openai.OpenAI(base_url=loom.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    for attempt in range(2):  # twice: the first failure must have given its slot back
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model=f"r-{mode}", messages=ASK)
        elapsed = time.monotonic() - started
        assert e.value.status_code == EXPECTED[mode], (mode, e.value.body)
        assert e.value.body["code"] == ("upstream_timeout" if EXPECTED[mode] == 504 else "upstream_error")
        assert "remote engine" in e.value.message and elapsed < TIMEOUT + MARGIN, (mode, elapsed)


@pytest.mark.parametrize("mode", ["cut", "trickle"])
def test_a_stream_that_fails_after_it_started_ends_with_an_error_event(loom, mode):
    client = openai.OpenAI(base_url=loom.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    started, pieces = time.monotonic(), []
    with pytest.raises(openai.APIError) as e:  # the openai client raises on an SSE error event
        for chunk in client.chat.completions.create(model=f"r-{mode}", messages=ASK, stream=True):
            pieces += [c.delta.content for c in chunk.choices if c.delta.content]
    assert pieces == ["Hel"] and "remote engine" in e.value.message
    assert time.monotonic() - started < TIMEOUT + MARGIN


def test_slots_are_free_after_every_fault(loom):
    client = openai.OpenAI(base_url=loom.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    for mode in EXPECTED:  # every fault once more, then each model must still serve within its one slot
        with pytest.raises(openai.APIError):
            client.chat.completions.create(model=f"r-{mode}", messages=ASK)
    assert client.chat.completions.create(model="r-ok", messages=ASK).choices[0].message.content == "Hello"
    deadline = time.monotonic() + 10
    while loom.metric("loom_remote_in_flight") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert loom.metric("loom_remote_in_flight") == 0
    assert httpx.get(loom.url + "/health").status_code == 200
