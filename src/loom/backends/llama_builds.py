"""Which llama.cpp build an engine process loads.

`make install` never builds llama.cpp with -march=native: that build is tied to the machine it was
made on (a CPU listing AMX got AMX kernels that die with SIGILL where the sandbox forbids AMX; the
next machine may lack AVX-512). It builds:

- the portable build, installed as the llama-cpp-python package: AVX2 + FMA + F16C on x86-64
  (every x86 server and laptop CPU since 2013-2015), the ARMv8 baseline on ARM64;
- on x86-64, a second set of the same libraries with AVX-512 (F, BW, VL, DQ, CD, VBMI, VNNI: Ice Lake,
  Sapphire Rapids, Zen 4 and later), under <venv>/share/loom/llama-cpp/x86-64-v4/ with the CPU flags
  it needs in requires.txt. Q4_K decoding runs ~15-25% faster on it (docs/serving.md).

An engine child loads the best build whose flags this CPU lists (llama-cpp-python reads the folder
from LLAMA_CPP_LIB_PATH), and its start-up self-test proves it; a crash there falls back to the
portable build (backends.llamacpp.start_isolated).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

BUILDS_ENV = "LOOM_LLAMA_BUILDS"  # another folder of extra builds (tests; a system-wide install)


@dataclass(frozen=True)
class Build:
    name: str
    lib: str | None  # folder holding libllama.so and its ggml libraries; None = the package's own
    requires: frozenset[str]  # /proc/cpuinfo flags its instructions need

    def describe(self) -> str:
        needs = " ".join(sorted(self.requires))
        return f"{self.name} ({needs})" if needs else f"{self.name} (baseline)"


PORTABLE = Build("portable", None, frozenset())


def cpu_info() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo ("model name", "flags" on x86, "Features" on ARM);
    empty where there is no such file."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_flags(info: dict[str, str] | None = None) -> set[str]:
    """The CPU's feature flags as the kernel lists them."""
    info = cpu_info() if info is None else info
    return set((info.get("flags") or info.get("Features") or "").split())


def builds_root() -> Path:
    return Path(os.environ.get(BUILDS_ENV) or Path(sys.prefix) / "share" / "loom" / "llama-cpp")


def installed() -> list[Build]:
    """The portable build, then every extra build installed beside it."""
    extra = []
    root = builds_root()
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            lib, requires = folder / "lib", folder / "requires.txt"
            if (lib / "libllama.so").is_file() and requires.is_file():
                extra.append(Build(folder.name, str(lib), frozenset(requires.read_text().split())))
    return [PORTABLE, *extra]


def usable(flags: set[str] | None = None) -> list[Build]:
    """Builds this CPU can run, the most specialised first; the portable build always last."""
    flags = cpu_flags() if flags is None else flags
    fits = [b for b in installed() if b.requires and b.requires <= flags]
    return sorted(fits, key=lambda b: -len(b.requires)) + [PORTABLE]
