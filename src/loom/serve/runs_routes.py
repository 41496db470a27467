"""/v1/runs: training runs and their metrics (what the web page draws as live loss curves);
/v1/evals: the reports `loom eval classify` wrote (metrics, per-class table, confusion matrix)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends

from loom import home
from loom.errors import NotFoundError


def _read_jsonl(path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the line being written right now
    return rows


def router(authorize) -> APIRouter:
    api = APIRouter(prefix="/v1/runs", dependencies=[Depends(authorize)])

    @api.get("")
    async def runs():
        root = home.runs_dir()
        data = []
        for run in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            result = json.loads((run / "result.json").read_text(encoding="utf-8")) if (run / "result.json").is_file() else {}
            data.append({"name": run.name, "finished": bool(result), "steps": result.get("steps"), "params": result.get("params")})
        return {"object": "list", "data": data}

    @api.get("/{name}/metrics")
    async def metrics(name: str):
        run = home.run_dir(name)
        if not run.is_dir():
            raise NotFoundError(f"run {name!r} not found", "see GET /v1/runs")
        rows = _read_jsonl(run / "metrics.jsonl")
        return {"name": name, "train": [{"step": r["step"], "loss": r["loss"]} for r in rows if "loss" in r],
                "val": [{"step": r["step"], "loss": r["val_loss"]} for r in rows if "val_loss" in r]}

    return api


def evals_router(authorize) -> APIRouter:
    from fastapi.responses import FileResponse

    api = APIRouter(prefix="/v1/evals", dependencies=[Depends(authorize)])

    def folder(name: str):
        path = home.eval_dir(name)  # one folder inside evals/, never a path (400 otherwise)
        if not (path / "report.json").is_file():
            raise NotFoundError(f"evaluation report {name!r} not found", "see GET /v1/evals")
        return path

    @api.get("")
    async def evals():
        root = home.evals_dir()
        data = []
        for path in sorted(p for p in root.iterdir() if (p / "report.json").is_file()) if root.is_dir() else []:
            rep = json.loads((path / "report.json").read_text(encoding="utf-8"))
            data.append({"name": path.name, "examples": rep.get("examples"), "accuracy": rep.get("accuracy"), "macro_f1": rep.get("macro_f1")})
        return {"object": "list", "data": data}

    @api.get("/{name}")
    async def report(name: str):
        rep = json.loads((folder(name) / "report.json").read_text(encoding="utf-8"))
        rep.pop("report_dir", None)  # the server's folders stay private; the data file keeps only its name
        if isinstance(rep.get("data"), str):
            rep["data"] = rep["data"].replace("\\", "/").rsplit("/", 1)[-1]
        return rep

    @api.get("/{name}/confusion.png")
    async def confusion(name: str):
        png = folder(name) / "confusion.png"
        if not png.is_file():
            raise NotFoundError(f"report {name!r} has no confusion matrix (multi-label)", "see its per-class table")
        return FileResponse(png, media_type="image/png")

    return api
