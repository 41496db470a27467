"""Atomic writes: readers see the old file/folder or the new one, never half of one.

Files are written to a temporary sibling and renamed with os.replace (atomic on POSIX within one
filesystem). Folders are built under `<name>.tmp-<pid>`, flushed to disk and renamed into place when
complete; a crash leaves only the .tmp folder, which the next writer removes.

A full or read-only disk (ENOSPC, EROFS, a SQLite "database or disk is full" ...) surfaces as one
StorageError naming what could not be written; the old file, folder or row is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loom.errors import StorageError

_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}
_SQLITE_STORAGE = ("disk is full", "readonly database", "disk I/O error", "unable to open database file")


def storage_error(e: BaseException, target) -> StorageError | None:
    """The StorageError for a failed write to `target`, or None when `e` is some other failure."""
    if isinstance(e, OSError) and e.errno in _STORAGE_ERRNOS:
        reason = e.strerror or str(e)
    elif isinstance(e, sqlite3.OperationalError) and any(s in str(e) for s in _SQLITE_STORAGE):
        reason = str(e)
    else:
        return None
    return StorageError(f"could not write {target}: {reason}",
                        "free disk space or make LOOM_HOME writable (or point LOOM_HOME at another disk); "
                        "nothing was half-written: the previous version is intact")


@contextlib.contextmanager
def guarded(target) -> Iterator[None]:
    """Turn a full or read-only disk inside the block into a StorageError about `target`."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as e:
        err = storage_error(e, target)
        if err is None:
            raise
        raise err from e


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
        with guarded(path), open(tmp, mode, **kwargs) as f:
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
    with guarded(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    try:
        with guarded(path):
            yield tmp
            _sync_tree(tmp)
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


def _sync_tree(folder: Path) -> None:
    """Flush a finished folder's files to disk before it is renamed into place: a full disk is found
    here (ENOSPC on flush), while the old folder still stands, not after a power cut."""
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
