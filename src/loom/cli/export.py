"""`loom export MODEL --format gguf|ollama|hf`: a language model out to llama.cpp, Ollama or vLLM."""

from __future__ import annotations

import typer

from loom.cli.output import console, kv_table, print_json


def export(
    model: str = typer.Argument(..., help="a Loom run, a merged SFT run, a LoRA run (merged on the fly), smollm2, "
                                "qwen2.5-0.5b, an HF folder or a .gguf file"),
    fmt: str = typer.Option("gguf", "--format", "-f", help="gguf (llama.cpp) | ollama (GGUF + Modelfile) | hf (a clean "
                            "Hugging Face folder for vLLM/transformers)"),
    quant: str = typer.Option(None, "--quant", "-q", help="GGUF weights: f16 | q8_0 (default q8_0; gguf and ollama only)"),
    out: str = typer.Option(None, "--out", "-o", help="output .gguf file (gguf) or folder (ollama, hf); default under "
                            "$LOOM_HOME/exports/"),
    name: str = typer.Option(None, "--name", help="register the export under this name (default MODEL-QUANT, "
                             "MODEL-ollama or MODEL-hf)"),
    embeddings_f16: bool = typer.Option(False, "--embeddings-f16", help="q8_0: keep the token embeddings and output matrix "
                                        "at f16 (~18% larger on SmolLM2; docs/export.md)"),
    system: str = typer.Option(None, "--system", help="ollama: a SYSTEM prompt for the Modelfile"),
    force: bool = typer.Option(False, "--force", help="replace an existing output and registration"),
    verify: bool = typer.Option(False, "--verify", help="read the export back: logit difference, top-1 agreement and "
                                "chat-template identity against the source"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Export a language model as GGUF (llama.cpp), an Ollama folder, or a clean HF folder, registered in
    the catalog under a new name so `loom serve` and `loom chat` run the exported file."""
    from loom.model.export.run import export as run_export, plan

    p = plan(model, fmt, quant, out, name, force, embeddings_f16)
    console.print(f"exporting {p.source.name} -> {p.out} ({fmt}{', ' + p.quant if p.quant else ''})")
    report = run_export(p, system=system, verify=verify, progress=not json_out)
    if json_out:
        print_json(report)
        return
    checks = report.pop("verify", None)
    kv_table(f"exported {report['source']} as {report['registered_as']}", report)
    if checks:
        template = checks.pop("template")
        warning = checks.pop("warning", None)
        kv_table("verification (source vs export read back)", checks | {
            "chat template": f"{template['identical']}/{template['conversations']} conversations identical"
                             + (f"; differs: {'; '.join(template['mismatches'])}" if template["mismatches"] else "")})
        if warning:
            console.print(f"[yellow]warning:[/yellow] {warning}")
    if fmt == "ollama":
        console.print(f"to use it in Ollama: [bold]{report['ollama_create']}[/bold]")
