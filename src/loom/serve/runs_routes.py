"""/v1/runs: training runs and their metrics (what the web page draws as live loss curves)."""

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
