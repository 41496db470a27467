"""Keys, rate limits, overload, the remote backend, `loom chat`, and a fuzz test of the server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import REPO, LiveServer, run_loom, statuses_of_five_at_once

HELLO = [{"role": "user", "content": "the river runs"}]


def _home_with_catalog(served_home, tmp_path):
    home = tmp_path / "home"
    home.mkdir(parents=True)
    shutil.copy(served_home / "models.json", home / "models.json")
    return home


def _client(server, key="unused"):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_keys_auth_limits_usage_revoke(served_home, tmp_path):
    home = _home_with_catalog(served_home, tmp_path)
    secret = run_loom("keys", "create", "alice", "--rpm", "3", env_home=home).stdout.strip()
    other = run_loom("keys", "create", "bob", env_home=home).stdout.strip()
    assert secret.startswith("loom-") and secret not in (home / "loom.db").read_bytes().decode("latin-1")  # only the hash
    server = LiveServer(home, "--preload", "nano")
    try:
        assert httpx.get(server.url + "/health").status_code == 200  # /health stays open
        missing = httpx.get(server.url + "/v1/models")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            _client(server, secret[:-2] + "xx").models.list()
        assert httpx.get(server.url + "/metrics").status_code == 401
        alice = _client(server, secret)
        for _ in range(3):
            alice.chat.completions.create(model="nano", messages=HELLO, max_tokens=4)
        with pytest.raises(openai.RateLimitError) as e:
            alice.chat.completions.create(model="nano", messages=HELLO, max_tokens=4)
        assert e.value.response.headers["retry-after"]
        _client(server, other).chat.completions.create(model="nano", messages=HELLO, max_tokens=4)  # limits are per key
        usage = json.loads(run_loom("keys", "usage", "--json", env_home=home).stdout)
        by_name = {u["name"]: u for u in usage}
        assert by_name["alice"]["requests"] == 3 and by_name["alice"]["completion_tokens"] > 0
        assert by_name["bob"]["requests"] == 1
        run_loom("keys", "revoke", "bob", env_home=home)
        with pytest.raises(openai.AuthenticationError):
            _client(server, other).models.list()
        listed = json.loads(run_loom("keys", "list", "--json", env_home=home).stdout)
        assert [k["revoked"] is not None for k in listed] == [False, True]
    finally:
        server.stop()


def test_tokens_per_minute_limit(served_home, tmp_path):
    home = _home_with_catalog(served_home, tmp_path)
    secret = run_loom("keys", "create", "tight", "--tpm", "30", env_home=home).stdout.strip()
    server = LiveServer(home)
    try:
        client = _client(server, secret)
        client.chat.completions.create(model="nano", messages=HELLO, max_tokens=40, temperature=0)  # spends > 30 tokens
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="nano", messages=HELLO, max_tokens=4)
    finally:
        server.stop()


def test_full_queue_answers_503(served_home, tmp_path):
    server = LiveServer(_home_with_catalog(served_home, tmp_path), "--preload", "slow", "--max-batch", "1", "--max-queue", "1")
    def overloaded_body(r):
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "overloaded" and r.headers["retry-after"]

    try:
        statuses = statuses_of_five_at_once(server.url, {"model": "slow", "messages": HELLO, "max_tokens": 150, "temperature": 0},
                                            overloaded_body)
        assert 503 in statuses and 200 in statuses and set(statuses) <= {200, 503}
    finally:
        server.stop()


def test_remote_backend_proxies_another_server(served_home, tmp_path):
    upstream = LiveServer(_home_with_catalog(served_home, tmp_path / "up"), "--preload", "nano")
    home = tmp_path / "front"
    home.mkdir()
    run_loom("models", "add", "far-nano", upstream.url + "/v1", "--backend", "openai", "--remote-model", "nano", env_home=home)
    run_loom("models", "add", "far-slow", upstream.url + "/v1", "--backend", "openai", "--remote-model", "slow", env_home=home)
    front = LiveServer(home)
    try:
        direct = _client(upstream).chat.completions.create(model="nano", messages=HELLO, max_tokens=8, temperature=0)
        via = _client(front).chat.completions.create(model="far-nano", messages=HELLO, max_tokens=8, temperature=0)
        assert via.choices[0].message.content == direct.choices[0].message.content
        assert via.usage.completion_tokens == direct.usage.completion_tokens
        streamed = "".join(c.choices[0].delta.content or "" for c in _client(front).chat.completions.create(
            model="far-nano", messages=HELLO, max_tokens=8, temperature=0, stream=True) if c.choices)
        assert streamed == direct.choices[0].message.content
        with pytest.raises(openai.BadRequestError):  # the upstream's 400 comes back as a 400
            _client(front).chat.completions.create(model="far-nano", messages=[{"role": "user", "content": "river " * 400}])
        from test_tools import ASK, TOOLS

        # Tools pass through and the upstream's calls come back as calls, whole and streamed.
        forced = dict(messages=ASK, tools=TOOLS, max_tokens=400, temperature=1.0, seed=3,
                      tool_choice={"type": "function", "function": {"name": "multiply"}})
        direct_call = _client(upstream).chat.completions.create(model="slow", **forced).choices[0].message.tool_calls[0]
        via = _client(front).chat.completions.create(model="far-slow", **forced).choices[0]
        assert via.finish_reason == "tool_calls" and via.message.tool_calls[0].function == direct_call.function
        deltas = [d for c in _client(front).chat.completions.create(model="far-slow", stream=True, **forced) if c.choices
                  for d in c.choices[0].delta.tool_calls or []]
        assert deltas[0].function.name == "multiply" and "".join(d.function.arguments for d in deltas) == direct_call.function.arguments
        upstream.stop()
        with pytest.raises(openai.APIStatusError) as e:
            _client(front).chat.completions.create(model="far-nano", messages=HELLO, max_tokens=4)
        assert e.value.status_code == 502
    finally:
        front.stop()
        upstream.stop()


def test_chat_cli_streams_and_resets(served_home, monkeypatch):
    env = dict(os.environ, LOOM_HOME=str(served_home))
    proc = subprocess.run([sys.executable, "-m", "loom", "chat", "nano", "--max-tokens", "5", "--temperature", "0"],
                          input="the river\n/reset\nquiet towns\n/exit\n", capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "history cleared" in proc.stderr
    monkeypatch.setenv("LOOM_HOME", str(served_home))
    from loom import registry
    from loom.backends.base import Sampling

    backend = registry.open_backend("nano")
    greedy = Sampling(max_tokens=5, temperature=0)
    first = backend.chat([{"role": "user", "content": "the river"}], greedy).text
    after_reset = backend.chat([{"role": "user", "content": "quiet towns"}], greedy).text  # no earlier turns
    backend.close()
    assert proc.stdout == first + "\n" + after_reset + "\n"


def test_cli_rejects_bad_backend_and_url(served_home, tmp_path):
    bad = run_loom("models", "add", "x", "somewhere", "--backend", "openai", env_home=tmp_path / "h", check=False)
    assert bad.returncode == 2 and "URL" in bad.stderr
    bad = run_loom("models", "add", "x", "somewhere", "--backend", "quantum", env_home=tmp_path / "h", check=False)
    assert bad.returncode == 2 and "openai" in bad.stderr


_json = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                     max_leaves=12)
_fields = {
    "/v1/chat/completions": ["model", "messages", "max_tokens", "temperature", "top_p", "stop", "seed", "n", "stream",
                             "response_format", "stream_options", "max_completion_tokens"],
    "/v1/completions": ["model", "prompt", "max_tokens", "temperature", "stop", "echo", "stream"],
    "/v1/embeddings": ["model", "input", "encoding_format", "dimensions"],
    "/v1/classify": ["model", "input"],
}
_valid = {
    "/v1/chat/completions": {"model": "nano", "messages": HELLO, "max_tokens": 3},
    "/v1/completions": {"model": "nano", "prompt": "the", "max_tokens": 3},
    "/v1/embeddings": {"model": "minilm", "input": "x"},
    "/v1/classify": {"model": "nano", "input": "x"},
}


@st.composite
def _bodies(draw):
    path = draw(st.sampled_from(sorted(_fields)))
    body = dict(_valid[path])
    for name in draw(st.lists(st.sampled_from(_fields[path]), max_size=3, unique=True)):
        if draw(st.booleans()):
            body[name] = draw(_json)
        else:
            body.pop(name, None)
    raw = draw(st.sampled_from(["json", "json", "json", "garbage", "array"]))
    if raw == "garbage":
        return path, draw(st.binary(max_size=40))
    return path, json.dumps([body] if raw == "array" else body).encode()


def test_fuzz_malformed_bodies_never_5xx(served_home, tmp_path):
    server = LiveServer(_home_with_catalog(served_home, tmp_path), "--preload", "nano", "--max-tokens", "4")
    seen = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(_bodies())
    def check(case):
        path, content = case
        r = httpx.post(server.url + path, content=content, headers={"Content-Type": "application/json"}, timeout=60)
        seen.append(r.status_code)
        assert r.status_code < 500, (path, content[:300], r.text[:500])
        if r.status_code >= 400:
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}

    try:
        check()
        assert any(s == 200 for s in seen) and any(400 <= s < 500 for s in seen)
    finally:
        server.stop()


def test_public_bind_without_keys_warns_loudly(served_home, tmp_path):
    server = LiveServer(_home_with_catalog(served_home, tmp_path), "--host", "0.0.0.0")
    try:
        assert "WARNING: binding 0.0.0.0 with no API keys" in server.output()
    finally:
        server.stop()


def test_port_in_use_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = run_loom("serve", "--port", str(port), env_home=tmp_path / "h", check=False, timeout=60)
    assert proc.returncode == 2 and "pass another --port" in proc.stderr


def test_key_management_over_http_needs_an_admin_key(served_home, tmp_path):
    home = _home_with_catalog(served_home, tmp_path)
    admin = run_loom("keys", "create", "root", "--admin", env_home=home).stdout.strip()
    user = run_loom("keys", "create", "user", env_home=home).stdout.strip()
    server = LiveServer(home)
    try:
        api = server.url + "/v1/keys"
        denied = httpx.get(api, headers={"Authorization": f"Bearer {user}"})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "admin_required"
        assert httpx.get(api).status_code == 401
        made = httpx.post(api, json={"name": "bot", "rpm": 5}, headers={"Authorization": f"Bearer {admin}"}).json()
        assert made["key"].startswith("loom-") and made["admin"] is False and made["rpm"] == 5
        listed = httpx.get(api, headers={"Authorization": f"Bearer {admin}"}).json()["data"]
        assert [k["name"] for k in listed] == ["root", "user", "bot"] and "digest" not in listed[0]
        revoked = httpx.delete(f"{api}/{made['id']}", headers={"Authorization": f"Bearer {admin}"}).json()
        assert revoked["revoked"] is not None
        assert httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {made['key']}"}).status_code == 401
    finally:
        server.stop()


def test_default_config_without_the_pull_says_how(tmp_path):
    """configs/serve/default.yaml preloads the default chat model, which `make run` pulls and sets first
    (qwen2.5-1.5b); started bare it says how. A default that was set but never pulled says how too."""
    proc = run_loom("serve", "--config", str(REPO / "configs/serve/default.yaml"), env_home=tmp_path / "h", check=False, timeout=120)
    assert proc.returncode == 2 and "loom models pull qwen2.5-1.5b --default" in proc.stderr, proc.stderr
    from loom import atomic

    atomic.write_json(tmp_path / "h" / "settings.json", {"chat_model": "qwen2.5-1.5b"})  # pulled once, then the file went
    proc = run_loom("serve", "--config", str(REPO / "configs/serve/default.yaml"), env_home=tmp_path / "h", check=False, timeout=120)
    assert proc.returncode == 2 and "run `loom models pull qwen2.5-1.5b` once" in proc.stderr, proc.stderr


def test_a_config_file_preloads_names_only_a_path_comes_from_the_command_line(tmp_path, served_home):
    """A config file's preload naming a path is refused before anything starts (whoever can write the
    file must not make the server open files); the operator's `--preload PATH` still serves that model."""
    bad = tmp_path / "serve.yaml"
    bad.write_text("preload: [/etc/passwd]\n", encoding="utf-8")
    proc = run_loom("serve", "--config", str(bad), env_home=tmp_path / "h", check=False, timeout=120)
    assert proc.returncode == 2 and "is not a model name" in proc.stderr and "--preload PATH" in proc.stderr
    from loom.config import ServeConfig

    assert ServeConfig(preload=["smollm2", "support:shop"]).preload == ["smollm2", "support:shop"]  # routed names pass
    for path in ("../models/x", "C:\\models\\x.gguf", "./x.gguf/"):
        with pytest.raises(ValueError, match="is not a model name"):
            ServeConfig(preload=[path])
    folder = str(served_home / "slow-model")
    server = LiveServer(served_home, "--preload", folder)
    try:
        body = {"model": folder, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60).status_code == 200
        assert f"loaded {folder}" in server.output()
    finally:
        server.stop()
