"""Atomic writes: readers see the old file/folder or the new one, never half of one.

Files are written to a temporary sibling and renamed with os.replace (atomic on POSIX within one
filesystem). Folders are built under `<name>.tmp-<pid>` and renamed into place when complete; a crash
leaves only the .tmp folder, which the next writer removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_bytes(path: Path, data: bytes) -> None:
    with file_writer(path, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def file_writer(path: Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of `path` for streaming writes; rename into place on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    kwargs = {"encoding": "utf-8"} if "b" not in mode else {}
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def folder_writer(path: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes `path`. With replace=False an existing
    `path` is an error for the caller to have checked; with replace=True it is swapped out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists() and replace:
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
