"""/v1/train/jobs: start a fine-tune from the web page (or any client), watch it, stop it, evaluate it.

A job is the CLI itself, `python -m loom finetune sft|classify ...`, run as a child process on the
server's LOOM_HOME, so it trains exactly as the command does (same checks, same run folder, same
registration). Its live loss curve is /v1/runs/NAME/metrics; when it ends, NAME is a model the
chat routes serve.

Training spends the server's compute and writes models, so these routes need an admin key once
keys exist. The data can only be uploaded with the request: a client never names a file on the
server. The base must be a model the server offers by name. One job runs at a time, and a second
one gets 409.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import anyio
from fastapi import APIRouter, Depends, File, Form, UploadFile

from loom import atomic, catalog, home
from loom.config import ClassifyConfig, SFTConfig, load
from loom.errors import ExistsError, InputError, NotFoundError
from loom.serve.auth import admin_only
from loom.serve.errors import APIError

MAX_DATA_BYTES = 64 * 1024 * 1024  # an upload is read whole; larger training sets go through the CLI
LOG_TAIL = 4000  # characters of the job's output returned with its status
EVAL_EXAMPLES = 20  # held-out conversations answered by POST /eval (a quick look, not a benchmark)


class Jobs:
    """The server's training jobs: child processes, their status files and logs."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def running(self) -> str | None:
        with self.lock:
            return next((n for n, p in self.procs.items() if p.poll() is None), None)

    def start(self, name: str, kind: str, args: list[str], data_name: str, data: bytes) -> dict:
        folder = home.job_dir(name)
        with self.lock:
            busy = next((n for n, p in self.procs.items() if p.poll() is None), None)
            if busy:
                raise APIError(409, f"training job {busy!r} is still running; one job runs at a time", code="job_running")
            folder.mkdir(parents=True, exist_ok=True)
            data_path = folder / data_name
            atomic.write_bytes(data_path, data)
            cmd = [sys.executable, "-m", "loom", "finetune", kind, "--data", str(data_path), "--name", name, "--quiet", *args]
            log = open(folder / "log.txt", "wb")
            env = dict(os.environ, LOOM_HOME=str(home.home()), PYTHONUNBUFFERED="1", COLUMNS="110")  # the log's tables
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            log.close()
            self.procs[name] = proc
            record = {"name": name, "kind": kind, "args": args, "data": data_name, "started": time.time(), "pid": proc.pid}
            atomic.write_json(folder / "job.json", record)
        threading.Thread(target=self._reap, args=(name, proc), daemon=True).start()
        return self.status(name)

    def _reap(self, name: str, proc: subprocess.Popen) -> None:
        code = proc.wait()
        path = home.job_dir(name) / "job.json"
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("status") != "stopped":
            record["status"] = "finished" if code == 0 else "failed"
        record.update(exit_code=code, ended=time.time())
        atomic.write_json(path, record)

    def stop(self, name: str) -> dict:
        path = home.job_dir(name) / "job.json"
        if not path.is_file():
            raise NotFoundError(f"training job {name!r} not found", "see GET /v1/train/jobs")
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            raise APIError(409, f"training job {name!r} is not running", code="job_not_running")
        record = json.loads(path.read_text(encoding="utf-8"))
        atomic.write_json(path, record | {"status": "stopped"})
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the run keeps its last checkpoint (resumable) or removes itself
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        return self.status(name)

    def close(self) -> None:
        """Server shutdown: interrupt running jobs (each keeps its last checkpoint for --resume)."""
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)

    def status(self, name: str) -> dict:
        folder = home.job_dir(name)
        if not (folder / "job.json").is_file():
            raise NotFoundError(f"training job {name!r} not found", "see GET /v1/train/jobs")
        record = json.loads((folder / "job.json").read_text(encoding="utf-8"))
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None and record.get("status") != "stopped":
            record["status"] = "running"
        record.setdefault("status", "failed")  # a job.json without status or process: the server restarted under it
        record["log"] = _tail(folder / "log.txt")  # polled every 2 s by the page: read the end, not the whole log
        record.pop("pid", None)
        run = home.run_dir(name)
        result = run / ("result.json" if record["kind"] == "sft" else "train.json")
        if result.is_file() and record["status"] == "finished":
            summary = json.loads(result.read_text(encoding="utf-8"))
            keep = ("accuracy", "macro_f1", "evaluated_on", "steps", "method", "examples", "last", "train_seconds", "labels")
            record["result"] = {k: summary[k] for k in keep if k in summary}
        return record

    def list(self) -> list[dict]:
        root = home.jobs_dir()
        names = sorted(p.name for p in root.iterdir() if (p / "job.json").is_file()) if root.is_dir() else []
        return [{k: v for k, v in self.status(n).items() if k != "log"} for n in names]


def _tail(path) -> str:
    if not path.is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_TAIL))
        return f.read().decode("utf-8", errors="replace")


def _flags(kind: str, base: str, epochs: float | None, max_steps: int | None, lr: float | None, batch_size: int | None,
           max_len: int | None, lora: bool | None) -> list[str]:
    """CLI flags for the job, validated here first (a bad value is a 400 now, not a failed job later)."""
    if not (kind == "classify" and base in ("tfidf", "minilm", "e5")):
        catalog.resolve(base, allow_paths=False)  # a model the server offers by name, never a path
    for field, value in (("epochs", epochs), ("lr", lr)):
        if value is not None and not math.isfinite(value):
            raise InputError(f"{field} must be a finite number (got {value})", f"send a positive {field}")
    if kind == "classify" and epochs is not None and epochs != int(epochs):
        raise InputError("classifier epochs must be a whole number", "e.g. epochs=3")
    values = {"base": base, "epochs": (epochs if kind == "sft" else int(epochs)) if epochs is not None else None,
              "max_steps": max_steps if kind == "sft" else None, "lr": lr, "batch_size": batch_size, "max_len": max_len, "lora": lora}
    load(SFTConfig if kind == "sft" else ClassifyConfig, None, values)
    args = []
    for key, value in values.items():
        if value is None or key == "lora":
            continue
        args += [f"--{key.replace('_', '-')}", str(value)]
    if lora is not None:
        args.append("--lora" if lora else "--no-lora" if kind == "sft" else "--full")
    return args


def router(authorize, server) -> APIRouter:
    api = APIRouter(prefix="/v1/train/jobs", dependencies=[Depends(admin_only(authorize, server, "training"))])
    jobs = server.jobs

    @api.post("")
    async def start(kind: str = Form(..., description="sft (a chat model) or classify (a text classifier)"),
                    name: str = Form(..., description="run and model name"),
                    base: str = Form(..., description="a model this server offers (sft: a chat model; classify: tfidf, minilm, e5, ...)"),
                    data: UploadFile = File(..., description="sft: conversations .jsonl; classify: .csv/.jsonl with text,label"),
                    epochs: float | None = Form(None), max_steps: int | None = Form(None), lr: float | None = Form(None),
                    batch_size: int | None = Form(None), max_len: int | None = Form(None), lora: bool | None = Form(None)):
        if kind not in ("sft", "classify"):
            raise APIError(400, f"unknown training kind {kind!r}: use sft or classify", param="kind", code="invalid_value")
        home.check_name(name, "run name")
        if home.run_dir(name).exists() or home.job_dir(name).exists():
            raise ExistsError(f"a run or job named {name!r} already exists", "choose another name")
        catalog.check_run_name(name, home.run_dir(name) / "model")  # never replaces a model the server offers
        args = _flags(kind, base, epochs, max_steps, lr, batch_size, max_len, lora)
        suffix = os.path.splitext(data.filename or "")[1].lower()
        allowed = (".jsonl", ".json") if kind == "sft" else (".csv", ".tsv", ".jsonl")
        if suffix not in allowed:
            raise InputError(f"training data must be one of {', '.join(allowed)} (got {data.filename!r})", "upload another file")
        payload = await data.read(MAX_DATA_BYTES + 1)
        if len(payload) > MAX_DATA_BYTES:
            raise APIError(413, f"training data over {MAX_DATA_BYTES:,} bytes", code="request_too_large")
        if not payload.strip():
            raise InputError("the uploaded training data is empty", "upload a file with examples")
        return await anyio.to_thread.run_sync(lambda: jobs.start(name, kind, args, f"data{suffix}", payload))

    @api.get("")
    async def listing():
        return {"object": "list", "data": await anyio.to_thread.run_sync(jobs.list)}

    @api.get("/{name}")
    async def status(name: str):
        return await anyio.to_thread.run_sync(jobs.status, name)

    @api.post("/{name}/stop")
    async def stop(name: str):
        return await anyio.to_thread.run_sync(jobs.stop, name)

    @api.post("/{name}/eval")
    async def evaluate(name: str):
        """A finished chat job: answer up to 20 of its held-out conversations and score them (contains)."""
        record = await anyio.to_thread.run_sync(jobs.status, name)
        if record["kind"] != "sft" or record["status"] != "finished":
            raise APIError(409, f"job {name!r} is not a finished chat fine-tune (status {record['status']})", code="job_not_finished")
        held_out = home.run_dir(name) / "val.jsonl"
        if not held_out.is_file() or not held_out.read_text(encoding="utf-8").strip():
            raise InputError(f"run {name!r} held out no conversations to evaluate on", "train with more than 20 examples")
        from loom.apps.eval_chat import evaluate_chat

        backend = await server.backend(name)
        result = await anyio.to_thread.run_sync(lambda: evaluate_chat(name, held_out, "contains", EVAL_EXAMPLES, 64,
                                                                      progress=False, backend=backend))
        return {k: result[k] for k in ("contains", "examples", "seconds")} | {"results": result["results"][:10]}

    return api
