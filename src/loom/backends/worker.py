"""llama.cpp in a supervised child process: a native crash (SIGILL from a kernel the CPU lists but the
sandbox forbids, SIGSEGV, the OOM killer's SIGKILL) ends the child, never the server.

The parent keeps the scheduler (backends.engine.BatchEngine: queue, admission, sampling, stop
strings, JSON mode, cancellation); the child holds the model and its KV cache and runs the runner
calls it is sent, one at a time. So continuous batching, streaming and the queue bound work as they
did in one process. Messages go over a socketpair (multiprocessing.connection framing, pickled
tuples); logits come back through a shared memory block (a memfd) of max_batch x n_vocab float32:
a 16-row step of qwen2.5-0.5b (152k vocabulary) is 9.7 MB that is never pickled.

Start-up self-test: before a child says it is ready it decodes a prompt of 48 tokens and two rows
of one token each (the GEMM and the GEMV kernels of every weight type in the file) and checks that
the logits are finite. A crash there is a result: the caller (backends.llamacpp) retries with
weight repacking off, then falls back to the transformers engine.

Supervision: when the child dies the calls in flight raise EngineCrashed (a 503 naming the model and
the signal; the engine turns it into an error for every request of the batch), and the next use
starts a new child after a back-off (0.5 s, doubling). After MAX_CRASHES crashes with no request
served in between, the engine stops restarting and every request gets a 503 with the reason.

The child exits by itself when the parent goes away: it sees end-of-file on the socket.

    python -m loom.backends.worker SPEC_JSON      (started by EngineProcess, never by hand)
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection

import numpy as np

from loom.backends.base import Overloaded

log = logging.getLogger(__name__)

MAX_CRASHES = 3  # crashes in a row (no request served in between) before the engine stops restarting
BACKOFF_S = 0.5  # wait before the first restart; doubles with every further crash in a row
START_TIMEOUT_S = 600.0  # loading a 1.5B file on a slow disk; a child that hangs longer is killed
PROBE_PROMPT = 48  # tokens of the self-test prompt (one GEMM pass), then two rows of one token (GEMV)

# Test hook: make the child crash in its self-test, as a CPU that lists AMX but may not use it does.
# "probe:repack" crashes only with weight repacking on; "probe:extra-build" only on a build other than
# the portable one (llama_builds); "probe:all" always; "probe:if-exists:PATH"
# while PATH exists (a test makes every restart crash from a given moment on); "step-delay:SECONDS"
# slows every decode step (a tiny test model otherwise finishes before a test can kill it mid-stream).
# Faults combine with commas.
FAULT_ENV = "LOOM_ENGINE_FAULT"


class EngineCrashed(Overloaded):
    """The engine's process died under a request (503: the server stays up, the engine restarts)."""

    code = "engine_crashed"


class EngineFailed(Overloaded):
    """The engine stopped restarting after repeated crashes, or failed its self-test (503 with the reason)."""

    code = "engine_failed"


@dataclass
class Spec:
    """What the child builds: LlamaCppRunner's arguments."""

    path: str
    max_batch: int = 16
    pool_tokens: int = 16384
    context: int = 4096
    threads: int | None = None
    repack: bool = True
    lib: str | None = None  # the llama.cpp build's library folder (llama_builds); None = the package's own


@dataclass
class Ready:
    """The child's first message, after its self-test passed."""

    pid: int
    n_vocab: int
    context: int
    capacity: int
    probe_ms: float
    system_info: str = ""


def signal_name(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class EngineProcess:
    """The runner protocol of backends.engine (prefill_many, admit, discard, step, keep, reset,
    capacity), served by a child process that this object starts, watches and restarts."""

    def __init__(self, spec: Spec, model: str) -> None:
        self.spec, self.model = spec, model
        self.crashes = 0  # in a row, since a request was last served
        self.restarts = 0
        self.last_crash: str | None = None  # e.g. "SIGKILL at 12:03:04"
        self.failed: str | None = None  # why the engine no longer restarts
        self._served = False  # a step or prefill answered since the last (re)start
        self._proc: subprocess.Popen | None = None
        self._start()  # a failed first start raises EngineFailed: the caller decides what to fall back to

    # -- runner protocol --------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.ready.capacity

    @property
    def context(self) -> int:
        return self.ready.context

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return None if proc is None else proc.pid

    def session(self):
        import contextlib

        return contextlib.nullcontext()

    def prefill_many(self, prompts: list[list[int]]):
        self._ensure_running()
        slots = self._call("prefill", prompts)
        rows = self._rows(len(prompts))
        return [(rows[i], slot) for i, slot in enumerate(slots)]

    def step(self, tokens: list[int], positions: list[int]):
        self._call("step", tokens, positions)
        return self._rows(len(tokens))

    def admit(self, pending) -> None:
        self._send("admit", pending)

    def discard(self, pending) -> None:
        self._send("discard", pending)

    def keep(self, rows: list[int]) -> None:
        self._send("keep", rows)

    def reset(self) -> None:
        """After a failed batch: forget the rows; a dead child is restarted here (after its back-off),
        in the engine's thread, while new requests wait in the queue."""
        if self._alive():
            self._send("reset")
            return
        try:
            self._ensure_running()
        except EngineFailed:
            pass  # every later request is answered with the reason (prefill_many raises it)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            self.conn.send(("close",))
            proc.wait(timeout=10)
        except (OSError, EOFError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        self._release()

    def status(self) -> dict:
        """What /health and `loom doctor` show for this engine."""
        state = "failed" if self.failed else "running" if self._alive() else "restarting"
        out = {"process": self.pid, "state": state, "restarts": self.restarts, "crashes_in_a_row": self.crashes}
        if self.last_crash:
            out["last_crash"] = self.last_crash
        if self.failed:
            out["reason"] = self.failed
        return out

    # -- supervision ------------------------------------------------------------------------------
    def _alive(self) -> bool:
        proc = self._proc  # one read: /health asks from the server's thread while the engine's may clear it
        return proc is not None and proc.poll() is None

    def _ensure_running(self) -> None:
        while not self._alive():
            if self.failed:
                raise EngineFailed(f"model {self.model!r}: {self.failed}",
                                   "see the server log; `loom doctor` runs the engine self-test; restart the server, "
                                   "or serve this model with --engine transformers")
            if self._proc is not None:  # died while idle (e.g. the OOM killer): count it like any crash
                self._crashed()
                continue
            time.sleep(BACKOFF_S * 2 ** max(self.crashes - 1, 0))
            self.restarts += 1
            try:
                self._start()
            except EngineFailed as e:
                self.crashes += 1
                self.last_crash = e.message
                if self.crashes >= MAX_CRASHES:
                    self.failed = f"the llama.cpp engine crashed {self.crashes} times in a row and was not restarted again (last: {e.message})"
                    log.error("%s", self.failed)

    def _crashed(self) -> EngineCrashed:
        """Record the child's death; the error every call in flight gets."""
        proc = self._proc
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # the socket broke but the process lingers: end it
            proc.kill()
            proc.wait()
        how = signal_name(proc.returncode)
        self._release()
        self._proc = None
        self._served = False
        self.crashes += 1
        self.last_crash = f"{how} at {time.strftime('%H:%M:%S')}"
        if self.crashes >= MAX_CRASHES:
            self.failed = f"the llama.cpp engine crashed {self.crashes} times in a row (last: {how}) and is not restarted again"
            log.error("model %s: %s", self.model, self.failed)
        else:
            log.error("model %s: the llama.cpp engine process %d died (%s); restarting it", self.model, proc.pid, how)
        return EngineCrashed(f"model {self.model!r}: the llama.cpp engine process died ({how}) while decoding this request",
                             "retry in a few seconds: the engine is restarting" if not self.failed else
                             "the engine is not restarted again; see the server log and `loom doctor`")

    def _start(self) -> None:
        """Start a child and wait for its self-test; raise EngineFailed if it dies or fails first."""
        parent, child = socket.socketpair()
        memfd = os.memfd_create("loom-logits", 0)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "loom.backends.worker", json.dumps(asdict(self.spec)), str(child.fileno()), str(memfd)]
        proc = subprocess.Popen(cmd, pass_fds=(child.fileno(), memfd), env=env, stdin=subprocess.DEVNULL)
        child.close()
        conn = Connection(parent.detach())
        try:
            if not conn.poll(START_TIMEOUT_S):
                proc.kill()
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        if not isinstance(message, tuple) or message[0] != "ready":
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            conn.close()
            os.close(memfd)
            reason = message[1] if isinstance(message, tuple) and message[0] == "failed" else signal_name(proc.returncode)
            raise EngineFailed(f"the llama.cpp engine's self-test failed ({reason})", "see the server log")
        self.ready = Ready(**message[1])
        self._proc, self.conn = proc, conn
        self._memfd = memfd
        size = self.spec.max_batch * self.ready.n_vocab * 4
        self._mm = mmap.mmap(memfd, size)
        self._logits = np.frombuffer(self._mm, dtype=np.float32).reshape(self.spec.max_batch, self.ready.n_vocab)
        self._served = False

    def _release(self) -> None:
        for close in (lambda: self.conn.close(), lambda: self._drop_view(), lambda: os.close(self._memfd)):
            try:
                close()
            except (OSError, AttributeError, BufferError, ValueError):
                pass

    def _drop_view(self) -> None:
        self._logits = None
        self._mm.close()

    def _send(self, *message) -> None:
        """A call with no answer (admit, discard, keep, reset): the child runs it before the next one.
        A dead child is noticed by the next call that waits for an answer."""
        if not self._alive():
            return
        try:
            self.conn.send(message)
        except (OSError, ValueError):
            pass

    def _call(self, *message):
        if not self._alive():
            raise self._crashed() if self._proc is not None else EngineCrashed(
                f"model {self.model!r}: the llama.cpp engine is restarting", "retry in a few seconds")
        try:
            self.conn.send(message)
            reply = self.conn.recv()
        except (EOFError, OSError):
            raise self._crashed() from None
        if reply[0] == "error":
            raise RuntimeError(f"llama.cpp engine: {reply[1]}")
        if not self._served:
            self._served, self.crashes = True, 0  # a request went through: the crash streak is over
        return reply[1]

    def _rows(self, n: int):
        """The first n rows of the shared logits block, copied (the next call overwrites the block)."""
        import torch

        return torch.from_numpy(self._logits[:n].copy())


# -- the child -----------------------------------------------------------------------------------------
def _faults() -> dict[str, str]:
    """LOOM_ENGINE_FAULT="probe:repack,step-delay:0.05" -> {"probe": "repack", "step-delay": "0.05"}."""
    items = [item.partition(":") for item in os.environ.get(FAULT_ENV, "").split(",") if item]
    return {key: value for key, _, value in items}


def _self_test(runner, fault: str) -> float:
    """Decode a 48-token prompt (batched matmuls) and one more token on two rows (vector matmuls):
    every weight of every quantisation type in the file goes through the kernels requests will use.
    Returns the time taken in ms; raises if the logits are not finite."""
    start = time.perf_counter()
    if (fault == "all" or (fault == "repack" and runner.repack) or (fault == "extra-build" and os.environ.get("LLAMA_CPP_LIB_PATH"))
            or (fault.startswith("if-exists:") and os.path.exists(fault.split(":", 1)[1]))):
        os.kill(os.getpid(), signal.SIGILL)  # what an unusable AMX instruction does, for the tests
    ids = [(7 + 31 * i) % runner.n_vocab for i in range(PROBE_PROMPT)]
    prompts = [ids, ids[:5]][: len(runner._free_slots)]  # two rows, or one on a --max-batch 1 engine
    first = runner.prefill_many(prompts)
    for _, slot in first:
        runner.admit(slot)
    rows = runner.step([p[0] for p in prompts], [len(p) for p in prompts])
    runner.reset()
    if not all(np.isfinite(row).all() for row, _ in first) or not np.isfinite(rows).all():
        raise RuntimeError("the self-test decode gave non-finite logits")
    return (time.perf_counter() - start) * 1000


def _serve(conn: Connection, runner, logits: np.ndarray, step_delay: float = 0.0) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone: so are we
        op, args = message[0], message[1:]
        if op == "close":
            return
        try:
            if op == "prefill":
                results = runner.prefill_many(*args)
                for i, (row, _) in enumerate(results):
                    logits[i] = row
                conn.send(("ok", [slot for _, slot in results]))
            elif op == "step":
                time.sleep(step_delay)
                runner.step(*args, into=logits)
                conn.send(("ok", None))
            elif op in ("admit", "discard", "keep"):
                getattr(runner, op)(*args)
            elif op == "reset":
                runner.reset()
        except Exception as e:  # noqa: BLE001  a Python-level failure: the parent fails the batch, we go on
            if op in ("prefill", "step"):
                conn.send(("error", f"{type(e).__name__}: {e}"))
            else:
                print(f"loom engine worker: {op} failed: {e}", file=sys.stderr)


def main(argv: list[str]) -> int:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash here is reported, not dumped into the cwd
    spec = Spec(**json.loads(argv[0]))
    conn = Connection(int(argv[1]))
    memfd = int(argv[2])
    faults = _faults()
    if spec.lib:  # read by llama-cpp-python when it is first imported (below)
        os.environ["LLAMA_CPP_LIB_PATH"] = spec.lib
    try:
        from loom.backends.runner_llamacpp import LlamaCppRunner, system_info

        runner = LlamaCppRunner(spec.path, max_batch=spec.max_batch, pool_tokens=spec.pool_tokens,
                                context=spec.context, threads=spec.threads, repack=spec.repack)
        runner.numpy = True
        os.ftruncate(memfd, spec.max_batch * runner.n_vocab * 4)
        mm = mmap.mmap(memfd, spec.max_batch * runner.n_vocab * 4)
        logits = np.frombuffer(mm, dtype=np.float32).reshape(spec.max_batch, runner.n_vocab)
        probe_ms = _self_test(runner, faults.get("probe", ""))
    except Exception as e:  # noqa: BLE001  a load or self-test failure the parent reports
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return 1
    conn.send(("ready", asdict(Ready(os.getpid(), runner.n_vocab, runner.context, runner.capacity, probe_ms, system_info()))))
    try:
        _serve(conn, runner, logits, float(faults.get("step-delay", 0)))
    finally:
        runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
