"""`loom export MODEL --format gguf|ollama|hf`: a Loom language model out to other engines, registered
back in the catalog so Loom serves the very file it wrote.

Order matters for bad input: everything that can be refused cheaply (format, quantisation, an
existing output, a taken name, a model kind or tokenizer that cannot be carried, a chat template
Ollama cannot express) is refused before any weights are loaded, and every output is written to a
temporary sibling and renamed into place, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from loom import atomic, catalog, home
from loom.catalog import ModelEntry
from loom.errors import ExistsError, InputError
from loom.model.export import ollama
from loom.model.export.gguf_file import QUANTS

FORMATS = ("gguf", "ollama", "hf")
DEFAULT_QUANT = "q8_0"
TOP1_GOAL = 0.99  # below this share of agreeing confident next tokens, --verify warns that q8_0 changed the model


@dataclass
class ExportPlan:
    source: ModelEntry
    fmt: str
    quant: str | None  # None for hf
    out: Path  # the .gguf file (gguf), the folder (ollama, hf)
    register_as: str
    chat: ollama.ChatFormat | None = None  # ollama only
    embeddings_f16: bool = False  # q8_0: keep token_embd/output at f16 (+25 MB on SmolLM2; bench/export_precision.py)

    @property
    def gguf_path(self) -> Path | None:
        if self.fmt == "gguf":
            return self.out
        if self.fmt == "ollama":
            return self.out / f"{self.source.name}-{self.quant}.gguf"
        return None

    @property
    def registered_path(self) -> Path:
        return self.gguf_path or self.out


def plan(name: str, fmt: str, quant: str | None = None, out: str | None = None, register_as: str | None = None,
         force: bool = False, embeddings_f16: bool = False) -> ExportPlan:
    """Check everything that needs no weights; returns what export() will do."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}", f"choose one of: {', '.join(FORMATS)}")
    if embeddings_f16 and (fmt == "hf" or (quant or DEFAULT_QUANT) != "q8_0"):
        raise InputError("--embeddings-f16 applies to q8_0 GGUF exports (gguf, ollama)", "drop --embeddings-f16")
    if fmt == "hf" and quant:
        raise InputError("--quant applies to GGUF exports (gguf, ollama); an hf export keeps fp32 weights", "drop --quant")
    quant = None if fmt == "hf" else (quant or DEFAULT_QUANT)
    if quant is not None and quant not in QUANTS:
        raise InputError(f"unknown quantisation {quant!r}", f"choose one of: {', '.join(QUANTS)}")
    source = catalog.resolve(name)
    _check_source(source)
    label = home.check_name(_label(source, name), "model name")
    default_name = f"{label}-{quant}" if fmt == "gguf" else f"{label}-{fmt}"
    target = Path(out).expanduser().resolve() if out else home.export_path(default_name + (".gguf" if fmt == "gguf" else ""))
    if fmt == "gguf" and target.suffix.lower() != ".gguf":
        raise InputError(f"--out {target} does not end in .gguf", "name the output file NAME.gguf")
    if target.exists() and not force:
        raise ExistsError(f"{target} already exists", "pass --force to replace it, or choose another --out")
    register_as = home.check_name(register_as or default_name, "model name")
    result = ExportPlan(source, fmt, quant, target, register_as, embeddings_f16=embeddings_f16)
    if not force:
        catalog.check_run_name(register_as, result.registered_path)
    elif register_as in catalog.BUILTINS:
        raise ExistsError(f"{register_as!r} is a built-in model name", "choose another --name")
    if fmt == "ollama":
        from loom.model.load import load_tokenizer

        result.chat = ollama.detect(load_tokenizer(source))
    return result


def _label(entry: ModelEntry, asked: str) -> str:
    """The name exports are called after: the catalog name, or for a path the file's stem or the run
    folder's name (runs/NAME/model -> NAME)."""
    if entry.name == asked and "/" not in asked and not asked.endswith(".gguf"):
        return entry.name
    path = Path(entry.path)
    return path.parent.name if path.name == "model" else path.stem


def _check_source(entry: ModelEntry) -> None:
    if entry.task != "generate" or entry.backend not in ("hf", "gguf"):
        what = "a remote engine's model" if entry.backend == "openai" else f"a {entry.task} model ({entry.backend})"
        raise InputError(f"{entry.name!r} is {what}; export writes language models Loom holds locally",
                         "export a chat or pretrained model: a Loom run, a merged SFT run, smollm2, qwen2.5-0.5b or an HF folder")
    path = Path(entry.path)
    if entry.backend == "hf" and not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise InputError(f"{path} has no tokenizer (no tokenizer.json or tokenizer_config.json), so no engine could read its tokens",
                         "save the tokenizer next to the weights (tokenizer.save_pretrained), or re-run the training that made it")


def _source_pre_tokenizer(entry: ModelEntry) -> str | None:
    """A GGUF source keeps its own pre-tokenizer name (transformers does not carry it through)."""
    if entry.backend != "gguf":
        return None
    from loom.model.export.gguf_file import read_metadata

    return read_metadata(Path(entry.path)).get("tokenizer.ggml.pre")


def export(p: ExportPlan, system: str | None = None, verify: bool = False, progress: bool = True) -> dict:
    """Load the source, write the export, register it; returns the report."""
    from loom.model.export.gguf_file import write_gguf
    from loom.model.load import load_model

    model, tokenizer = load_model(p.source)
    if p.fmt == "hf":
        from loom.model.export.hf import write_hf

        report = {"format": "hf", **write_hf(model, tokenizer, p.out, replace=True)}
    elif p.fmt == "gguf":
        summary = write_gguf(model, tokenizer, p.out, p.quant, p.source.name, _source_pre_tokenizer(p.source), progress,
                             embeddings_f16=p.embeddings_f16)
        report = {"format": "gguf", **summary.__dict__}
    else:
        report = _write_ollama(p, model, tokenizer, system, progress)
    catalog.add(p.register_as, str(p.registered_path), chat=p.source.chat, replace=True,
                description=f"{p.source.name} exported ({p.fmt}{', ' + p.quant if p.quant else ''})")
    report |= {"source": p.source.name, "registered_as": p.register_as}
    if verify:
        from loom.model.export.verify import verify as run_verify

        report["verify"] = checks = run_verify(model, tokenizer, p.registered_path, p.chat)
        # Near-ties (the source's two best tokens within 0.5 logit) flip under any rounding; a flip of a
        # confident choice is damage.
        if p.quant == "q8_0" and checks["confident_top1_agreement"] < TOP1_GOAL:
            checks["warning"] = (f"q8_0 changes this model's confident next-token choice at "
                                 f"{1 - checks['confident_top1_agreement']:.1%} of the checked positions (small models are the "
                                 "most sensitive); --quant f16 keeps it within rounding")
    return report


def _write_ollama(p: ExportPlan, model, tokenizer, system: str | None, progress: bool) -> dict:
    from loom.model.export.gguf_file import write_gguf

    gguf_name = p.gguf_path.name
    with atomic.folder_writer(p.out, replace=True) as tmp:
        summary = write_gguf(model, tokenizer, tmp / gguf_name, p.quant, p.source.name, _source_pre_tokenizer(p.source),
                             progress, embeddings_f16=p.embeddings_f16)
        stops = [tokenizer.eos_token] if tokenizer.eos_token and tokenizer.eos_token != p.chat.end_of_turn else []
        atomic.write_text(tmp / "Modelfile", ollama.modelfile(gguf_name, p.chat, system, stops))
    ollama_name = p.register_as.lower()
    return {"format": "ollama", **summary.__dict__, "path": str(p.out), "gguf": str(p.gguf_path),
            "modelfile": str(p.out / "Modelfile"), "default_system": p.chat.default_system,
            "ollama_create": f"ollama create {ollama_name} -f {p.out / 'Modelfile'}",
            "ollama_installed": shutil.which("ollama") is not None}
