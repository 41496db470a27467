"""Which server-side files an HTTP client may ask the server to read: none, unless the operator named
folders at start (`loom serve --kb-import-dir DIR`, repeatable), and then only files whose real path
(every symlink followed) lies inside one of them. Checked before anything is read or even tested for
existence, so a refused path tells the client nothing about the server's disk."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from loom.errors import InputError, LoomError


class Forbidden(LoomError):
    """The request names something the server will not open for this client (HTTP 403)."""


def import_roots(dirs: list[str]) -> list[Path]:
    """The operator's folders as real paths; a missing one is a startup error, not a silent no-op."""
    roots = []
    for raw in dirs:
        real = Path(os.path.realpath(Path(raw).expanduser()))
        if not real.is_dir():
            raise InputError(f"--kb-import-dir {raw}: no such folder", "create it or pass an existing folder")
        roots.append(real)
    return roots


def _inside(real: Path, roots: list[Path]) -> bool:
    return any(real == root or real.is_relative_to(root) for root in roots)


def allowed_files(paths: list[str], roots: list[Path], suffixes: set[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """(files to read, [(path, why skipped)]) for the paths a client sent. Relative paths are taken
    inside the first import folder. A path outside every folder refuses the whole request (Forbidden);
    a file inside a named folder that links out is skipped and reported, never read."""
    if not roots:
        raise Forbidden("this server does not read files from its own disk for API clients",
                        "send the content instead (documents with text, or a multipart upload to /v1/kb/NAME/files); "
                        "an operator can allow folders with `loom serve --kb-import-dir DIR`")
    files, skipped = [], []
    for raw in paths:
        if not raw or "\x00" in raw or len(raw) > 4096:
            raise InputError("a path is empty, too long or holds a NUL byte", "send plain paths inside the import folders")
        candidate = Path(raw) if Path(raw).is_absolute() else roots[0] / raw
        real = Path(os.path.realpath(candidate))
        if not _inside(real, roots):
            raise Forbidden(f"{raw!r} is outside the folders this server imports from",
                            f"allowed: {', '.join(str(r) for r in roots)}")
        if real.is_file():
            files.append(real)
        elif real.is_dir():
            for folder, _, names in os.walk(real):  # followlinks=False: linked folders are not entered
                for name in sorted(names):
                    path = Path(folder) / name
                    if path.suffix.lower() not in suffixes:
                        continue
                    if _inside(Path(os.path.realpath(path)), roots):
                        files.append(path)
                    else:
                        skipped.append((str(path), "refused: a link that leads outside the import folders"))
        else:
            skipped.append((raw, "no such file or folder"))
    return files, skipped


def read_inside(path: Path, roots: list[Path], limit: int) -> bytes:
    """A validated file's bytes, opened so that a symlink swapped in after allowed_files() checked it
    cannot lead outside: the last component is opened with O_NOFOLLOW, and the file actually opened
    (/proc/self/fd on Linux; elsewhere its device and inode against the path's) must still lie inside
    an import folder. Forbidden when it does not."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO cannot hang the read
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise Forbidden(f"{path} cannot be opened safely ({e.strerror})", "import regular files, not links") from e
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        opened = Path(os.readlink(f"/proc/self/fd/{fd}")) if Path(f"/proc/self/fd/{fd}").exists() else None
        if opened is None:
            real = Path(os.path.realpath(path))
            same = _inside(real, roots) and (os.stat(real).st_ino, os.stat(real).st_dev) == (info.st_ino, info.st_dev)
        else:
            same = _inside(opened, roots)
        if not same or not stat.S_ISREG(info.st_mode):
            raise Forbidden(f"{path} changed into something outside the import folders while it was read", "import it again")
        if info.st_size > limit:
            raise InputError(f"{path.name} is {info.st_size:,} bytes, over the {limit:,}-byte limit", "split it into smaller files")
        return f.read()
