"""Run `loom serve` in a child process on a free loopback port: for tests, benchmarks and scripts
that need a real server.

    with ServerProcess(home, "--preload", "smollm2") as server:
        openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

def _die_with_parent() -> None:
    """Run in the child before exec: the kernel sends it SIGKILL when the thread that started it ends
    (Linux), so a test run or benchmark that dies, even by SIGKILL, leaves no server behind. Start
    servers from a thread that outlives them (the main thread)."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`loom serve` in a subprocess on a free loopback port, with its own LOOM_HOME."""

    def __init__(self, home: Path, *args: str, start_timeout: float = 90, env: dict | None = None) -> None:
        import httpx

        home.mkdir(parents=True, exist_ok=True)
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, LOOM_HOME=str(home), PYTHONUNBUFFERED="1", **(env or {}))
        self.log = open(home / f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "loom", "serve", "--port", str(self.port), *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.time() + start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start in {start_timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.home / f"server-{self.port}.log").read_text(errors="replace")

    def metric(self, name: str, headers: dict | None = None) -> float:
        """Sum of a Prometheus metric's samples (all label sets)."""
        import httpx

        text = httpx.get(self.url + "/metrics", headers=headers or {}, timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#") and (line[len(name)] in " {"))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

