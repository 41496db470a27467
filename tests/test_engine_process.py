"""llama.cpp engines run in supervised child processes (issue 29): a native crash fails the requests in
flight with an OpenAI-style 503 naming the model and the signal, the engine restarts, other models
never notice, repeated crashes stop the restarts, a failed start-up self-test falls back, and servers
started by tests die with the test process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import REPO, LiveServer

pytest.importorskip("llama_cpp", reason="the llama.cpp engine needs llama-cpp-python (a core dependency: `make install` builds it)")

HELLO = [{"role": "user", "content": "the river runs"}]


def health(server) -> dict:
    return httpx.get(server.url + "/health", timeout=10).json()


def engine_pid(server, model: str) -> int:
    return health(server)["engines"][model]["process"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def ask(server, model: str, max_tokens: int = 8) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", timeout=120,
                      json={"model": model, "messages": HELLO, "max_tokens": max_tokens, "temperature": 0})


class Stream(threading.Thread):
    """One streamed chat request read line by line; remembers how it ended."""

    def __init__(self, url: str, model: str) -> None:
        super().__init__(daemon=True)
        self.url, self.model = url, model
        self.pieces, self.error, self.done = 0, None, False

    def run(self) -> None:
        body = {"model": self.model, "messages": HELLO, "max_tokens": 1000, "temperature": 0, "stream": True}
        with httpx.stream("POST", self.url + "/v1/chat/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    self.done = True
                    return
                event = json.loads(line[6:])
                if "error" in event:
                    self.error = event["error"]
                    return
                self.pieces += 1


def test_sigkill_during_eight_streams_fails_them_and_the_engine_restarts(gguf_home):
    server = LiveServer(gguf_home, "--engine", "llama.cpp", "--preload", "slow-f16", "--preload", "nano-f16",
                        env={"LOOM_ENGINE_FAULT": "step-delay:0.05"})  # ~20 steps a second: still decoding when killed
    try:
        victim, bystander = engine_pid(server, "slow-f16"), engine_pid(server, "nano-f16")
        assert victim != bystander and server.proc.pid not in (victim, bystander)
        streams = [Stream(server.url, "slow-f16") for _ in range(8)]
        for s in streams:
            s.start()
        wait_until(lambda: all(s.pieces >= 2 for s in streams), 60, "8 streams to be decoding")
        os.kill(victim, signal.SIGKILL)
        for s in streams:
            s.join(timeout=60)
        assert server.proc.poll() is None, "the server died with its engine"
        assert [s.done for s in streams] == [False] * 8
        for s in streams:
            assert s.error and s.error["code"] == "engine_crashed", s.error
            assert "slow-f16" in s.error["message"] and "SIGKILL" in s.error["message"]
        started = time.time()
        reply = ask(server, "slow-f16")
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
        assert time.time() - started < 10
        report = health(server)
        assert report["status"] == "ok"
        assert report["engines"]["slow-f16"]["restarts"] == 1 and report["engines"]["slow-f16"]["process"] != victim
        assert "SIGKILL" in report["engines"]["slow-f16"]["last_crash"]
        assert report["engines"]["nano-f16"]["process"] == bystander and report["engines"]["nano-f16"]["restarts"] == 0
        assert ask(server, "nano-f16").status_code == 200
        assert not alive(victim)
    finally:
        server.stop()


def test_repeated_crashes_stop_the_restarts_with_a_503_that_says_why(gguf_home, tmp_path):
    """From the moment the trigger file exists every restart crashes in its self-test: after three
    crashes in a row (0.5 + 1 s of back-off) the engine gives up; requests get 503 with the reason and
    /health says degraded. The other model keeps answering."""
    trigger = tmp_path / "crash-from-now-on"
    server = LiveServer(gguf_home, "--engine", "llama.cpp", "--preload", "nano-f16", "--preload", "slow-f16",
                        env={"LOOM_ENGINE_FAULT": f"probe:if-exists:{trigger}"})
    try:
        trigger.touch()
        os.kill(engine_pid(server, "nano-f16"), signal.SIGKILL)
        reply = ask(server, "nano-f16")
        assert reply.status_code == 503, reply.text
        error = reply.json()["error"]
        assert error["code"] == "engine_failed" and "nano-f16" in error["message"] and "3 times" in error["message"]
        assert "SIGILL" in error["message"]  # what the self-test of the last restart died of
        report = health(server)
        assert report["status"] == "degraded" and report["engines"]["nano-f16"]["state"] == "failed"
        assert ask(server, "nano-f16").status_code == 503  # stays down: no restart loop
        assert ask(server, "slow-f16").status_code == 200
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_a_self_test_crash_falls_back_and_says_so(gguf_home, tmp_path):
    """A probe that crashes only with weight repacking on (what AMX did) -> llama.cpp with repacking off;
    one that crashes on a faster build -> the portable build; one that always crashes -> the
    transformers engine. A log line and /health say which."""
    server = LiveServer(gguf_home, "--preload", "nano-f16", env={"LOOM_ENGINE_FAULT": "probe:repack"})
    try:
        engine = health(server)["engines"]["nano-f16"]
        assert engine["engine"] == "llama.cpp" and "repacking off" in engine["self_test"] and "SIGILL" in engine["self_test"]
        assert "retrying with repacking off" in server.output()
        assert ask(server, "nano-f16").status_code == 200
    finally:
        server.stop()
    # A faster build this CPU lists the flags for, which crashes: the portable build serves instead.
    import llama_cpp

    from loom.backends.llama_builds import cpu_flags

    builds = tmp_path / "builds"
    (builds / "fast").mkdir(parents=True)
    (builds / "fast" / "lib").symlink_to(Path(llama_cpp.__file__).parent / "lib")
    (builds / "fast" / "requires.txt").write_text(sorted(cpu_flags())[0] if cpu_flags() else "")
    server = LiveServer(gguf_home, "--preload", "nano-f16",
                        env={"LOOM_ENGINE_FAULT": "probe:extra-build", "LOOM_LLAMA_BUILDS": str(builds)})
    try:
        engine = health(server)["engines"]["nano-f16"]
        if cpu_flags():
            assert engine["self_test"].startswith("passed on the portable build") and "fast build" in engine["self_test"]
            assert "trying the next build" in server.output()
        assert ask(server, "nano-f16").status_code == 200
    finally:
        server.stop()
    server = LiveServer(gguf_home, "--preload", "nano-f16", env={"LOOM_ENGINE_FAULT": "probe:all"})
    try:
        engine = health(server)["engines"]["nano-f16"]
        assert engine["engine"] == "transformers" and engine["fallback_from"] == "llama.cpp" and "SIGILL" in engine["reason"]
        assert "serving it with the transformers engine" in server.output()
        assert ask(server, "nano-f16").status_code == 200
    finally:
        server.stop()


_ORPHAN_SCRIPT = """
import sys, time, httpx
from pathlib import Path
from loom.serve.process import ServerProcess
server = ServerProcess(Path(sys.argv[1]), "--engine", "llama.cpp", "--preload", "nano-f16")
engine = httpx.get(server.url + "/health").json()["engines"]["nano-f16"]["process"]
print(server.proc.pid, engine, flush=True)
time.sleep(600)
"""


def test_a_killed_test_process_leaves_no_server_or_engine_behind(gguf_home):
    """pytest (here: a script standing in for it) dies by SIGKILL: its server goes with it, and the
    server's engine child sees its socket close and exits too."""
    proc = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT, str(gguf_home)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    try:
        server_pid, engine = map(int, proc.stdout.readline().split())
        assert alive(server_pid) and alive(engine)
    finally:
        proc.kill()
        proc.wait()
    wait_until(lambda: not alive(server_pid), 15, "the server to die with its parent")
    wait_until(lambda: not alive(engine), 15, "the engine to exit once its server is gone")


def test_doctor_reports_the_machine_the_build_and_each_engine_self_test(loom_home):
    from conftest import run_loom

    report = json.loads(run_loom("doctor", "--json", env_home=loom_home).stdout)
    checks = {(c["area"], c["item"]): c for c in report["checks"]}
    assert report["ok"] is True
    assert "cores" in checks[("machine", "cpu")]["value"]
    assert checks[("llama.cpp", "build vs cpu")]["level"] != "fail"
    assert checks[("engines", "smollm2 self-test")]["value"].startswith("llama.cpp passed")
    assert "F16" in checks[("engines", "smollm2 self-test")]["value"]  # the weight types it ran
    assert "2.13.0" in checks[("torch", "version")]["value"]
    assert checks[("models", "smollm2")]["value"].startswith("gguf, ")
    broken = run_loom("doctor", env_home=loom_home, check=False, extra_env={"LOOM_ENGINE_FAULT": "probe:all"})
    assert broken.returncode == 1
    assert "FAILED" in broken.stdout and "SIGILL" in broken.stdout and "break the default setup" in broken.stdout
