"""Trained recommenders on disk: $LOOM_HOME/recommenders/NAME/ holds meta.json (kind, chosen
settings, tuning record, data report, user and item ids, titles and texts) and arrays.npz (the
model's arrays and the training matrix), written as one folder atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from loom import atomic, home
from loom.apps.recommend import models
from loom.errors import ExistsError, NotFoundError


@dataclass
class Saved:
    name: str
    model: object
    train: sparse.csr_matrix  # users x items, ones
    meta: dict

    @property
    def users(self) -> list[str]:
        return self.meta["users"]

    @property
    def items(self) -> list[str]:
        return self.meta["items"]


def _pack(state: dict, prefix: str) -> dict[str, np.ndarray]:
    out = {}
    for key, value in state.items():
        if sparse.issparse(value):
            csr = value.tocsr()
            out.update({f"{prefix}{key}@data": csr.data, f"{prefix}{key}@indices": csr.indices,
                        f"{prefix}{key}@indptr": csr.indptr, f"{prefix}{key}@shape": np.array(csr.shape)})
        else:
            out[f"{prefix}{key}"] = np.asarray(value)
    return out


def _unpack(arrays, prefix: str) -> dict:
    state: dict = {}
    for key in arrays.files:
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if "@" in name:
            base, part = name.split("@")
            if part == "shape":
                state[base] = sparse.csr_matrix((arrays[f"{prefix}{base}@data"], arrays[f"{prefix}{base}@indices"],
                                                 arrays[f"{prefix}{base}@indptr"]), shape=tuple(arrays[key]))
        else:
            state[name] = arrays[key]
    return state


def save(name: str, model, train: sparse.csr_matrix, meta: dict, overwrite: bool = False) -> Path:
    folder = home.recommender_dir(name)
    if folder.exists() and not overwrite:
        raise ExistsError(f"a recommender named {name!r} exists", "pick another --name, or pass --overwrite")
    with atomic.folder_writer(folder, replace=True) as tmp:
        np.savez(tmp / "arrays.npz", **_pack(model.state(), "model."), **_pack({"train": train}, "data."))
        (tmp / "meta.json").write_text(json.dumps({**meta, "kind": model.kind, "params": model.params}, ensure_ascii=False),
                                       encoding="utf-8")
    return folder


def load(name: str) -> Saved:
    folder = home.recommender_dir(name)
    if not (folder / "meta.json").is_file():
        known = ", ".join(list_names()) or "none yet"
        raise NotFoundError(f"no recommender named {name!r} (trained: {known})",
                            "train one with `loom recommend train --data FILE --model ease --name NAME`")
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:
        model = models.build(meta["kind"], **meta["params"])
        model.load(_unpack(arrays, "model."))
        train = _unpack(arrays, "data.")["train"]
    return Saved(name, model, train, meta)


def list_names() -> list[str]:
    root = home.recommenders_dir()
    return sorted(p.name for p in root.iterdir() if (p / "meta.json").is_file()) if root.is_dir() else []
