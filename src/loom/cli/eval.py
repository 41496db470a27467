"""`loom eval perplexity | classify | retrieval | support | summarize | translate | chat` (and `recommend`, from cli/recommend.py)."""

from __future__ import annotations

import typer

from loom.cli.output import kv_table, print_json, stdout_console

app = typer.Typer(help="Evaluate models.", no_args_is_help=True)


@app.command()
def perplexity(
    model: str = typer.Argument(..., help="run name, registered model, model folder or .gguf file"),
    data: str = typer.Option(..., "--data", "-d", help="a tokenized dataset name, or a text file"),
    split: str = typer.Option("val", help="dataset split: val | train"),
    seq_len: int = typer.Option(512, help="window length (capped by the model's context)"),
    batch_size: int = typer.Option(8),
    max_tokens: int = typer.Option(0, help="evaluate at most this many tokens (0 = all)"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Cross-entropy and perplexity of MODEL on a dataset split or a file."""
    from loom.errors import InputError
    from loom.eval.lm import evaluate_perplexity

    if split not in ("val", "train"):
        raise InputError(f"unknown split {split!r}", "use --split val or --split train")
    result = evaluate_perplexity(model, data, split, seq_len, batch_size, max_tokens, progress=not json_out)
    if json_out:
        print_json(result)
    else:
        kv_table(f"perplexity of {result['model']}", result)


@app.command("classify")
def classify(
    model: str = typer.Argument(..., help="a classifier: run name, registered name or folder"),
    data: str = typer.Option(..., "--data", "-d", help="labelled .csv/.tsv/.jsonl file"),
    compare: list[str] = typer.Option(None, "--compare", help="another classifier to score side by side (repeatable)"),
    text_col: str = typer.Option("text"),
    label_col: str = typer.Option("label"),
    json_out: bool = typer.Option(False, "--json", help="print the report(s) as JSON"),
) -> None:
    """Accuracy, macro/micro P/R/F1, per-class report, confusion matrix and worst errors."""
    from loom.classify.evaluate import evaluate_classifier

    reports = [evaluate_classifier(m, data, text_col, label_col) for m in [model, *(compare or [])]]
    if json_out:
        print_json(reports[0] if len(reports) == 1 else reports)
        return
    from rich.table import Table

    console = stdout_console()
    table = Table("model", "examples", "accuracy", "macro F1", "micro F1", "macro P", "macro R", "docs/s", title=f"on {data}")
    for r in reports:
        table.add_row(r["model"], str(r["examples"]), f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}", f"{r['micro_f1']:.4f}",
                      f"{r['macro_precision']:.4f}", f"{r['macro_recall']:.4f}", f"{r['docs_per_s']:.0f}")
    console.print(table)
    if len(reports) == 1:
        r = reports[0]
        per = Table("label", "precision", "recall", "F1", "support", title="per class")
        for label, v in r["per_class"].items():
            per.add_row(label, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", str(v["support"]))
        console.print(per)
        for err in r["worst_errors"][:5]:
            console.print(f"[red]x[/red] gold {err['gold']} predicted {err['predicted']} (p={err['probability']:.2f}): {err['text'][:100]}", soft_wrap=True)
    for r in reports:
        console.print(f"report: {r['report_dir']}/report.json")


@app.command()
def retrieval(
    kb: str = typer.Argument(..., help="knowledge base name"),
    qa: str = typer.Option(..., "--qa", help=".jsonl/.csv with question + source (file name) and/or contains (text)"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Recall@1/5/10, MRR and nDCG@10 of BM25, dense and hybrid retrieval on your questions."""
    from pathlib import Path

    from rich.table import Table

    from loom.apps.support.store import KnowledgeBase
    from loom.apps.support.eval_retrieval import evaluate, read_qa

    report = evaluate(KnowledgeBase(kb), read_qa(Path(qa)), progress=not json_out)
    if json_out:
        print_json(report)
        return
    metrics = list(next(iter(report["results"].values())))
    table = Table("retrieval", *metrics, title=f"{kb}: {report['questions']} questions, encoder {report['encoder']}")
    for mode, values in report["results"].items():
        table.add_row(mode, *(f"{values[m]:.3f}" for m in metrics))
    stdout_console().print(table)


@app.command()
def support(
    kb: str = typer.Argument(..., help="knowledge base name"),
    qa: str = typer.Option(..., "--qa", help=".jsonl/.csv with question and answer (the phrase a right answer contains)"),
    oos: str = typer.Option(None, "--oos", help=".jsonl/.csv of questions the KB cannot answer (should be handed off)"),
    model: str = typer.Option(None, "--model", help="chat model that writes the answers (default: extractive answers)"),
    reader: str = typer.Option("auto", "--reader", help="chat model that checks each passage answers before Loom answers "
                               "from it: auto (the writer or the default chat model, when it is qwen2.5-1.5b), off, or a name"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Answer accuracy, citation correctness and hand-off precision/recall, Chinese and English apart."""
    from pathlib import Path

    from rich.table import Table

    from loom import registry
    from loom.apps.support.eval_answers import evaluate, read_questions
    import sys

    from loom.apps.support.reader import check_choice, open_reader
    from loom.apps.support.store import KnowledgeBase

    check_choice(reader)
    base = KnowledgeBase(kb)
    questions = read_questions(Path(qa), need_answer=True)
    unanswerable = read_questions(Path(oos), need_answer=False) if oos else []
    generator = registry.open_backend(model) if model else None
    checker, reader_backend = open_reader(reader, model, generator, warn=lambda m: print(m, file=sys.stderr))
    try:
        report = evaluate(base, questions, unanswerable, generator, progress=not json_out, reader=checker)
    finally:
        for backend in (generator, reader_backend):
            if backend is not None:
                backend.close()
    if json_out:
        print_json(report)
        return
    console = stdout_console()
    columns = ("accuracy", "citation_correct", "handoff_rate", "oos_handoff_recall", "handoff_precision")
    table = Table("questions", "in-scope", "out-of-scope", *(c.replace("_", " ") for c in columns), "s/answer",
                  title=f"{kb}: {report['model'] or 'extractive'} answers, encoder {report['encoder']}"
                  + (f", passages checked by {report['reader']}" if report["reader"] else ""))
    for label, s in [("all", report["overall"]), *report["by_language"].items()]:
        table.add_row(label, str(s["in_scope"]), str(s["out_of_scope"]), *("-" if s[c] is None else f"{s[c]:.3f}" for c in columns),
                      f"{s['seconds_per_answer']['mean']:.2f}")
    console.print(table)
    for e in report["errors"][:10]:
        got = e["answer"].replace("\n", " ")[:90]
        want = f"expected {e['expected']!r}" if e["in_scope"] else "expected a hand-off"
        console.print(f"[red]x[/red] {e['question']} ({want}; {e['mode']}): {got}", soft_wrap=True, highlight=False)


@app.command()
def summarize(
    data: str = typer.Option(..., "--data", help=".jsonl/.csv with a text and a reference summary per row"),
    text_col: str = typer.Option("text"),
    summary_col: str = typer.Option("summary"),
    sentences: int = typer.Option(3, help="sentences per extractive summary"),
    model: str = typer.Option(None, help="chat model for the abstractive row (default: `loom models default`, else skipped)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """ROUGE-1/2/L of Loom's summaries vs Lead-3 and TextRank baselines (characters for Chinese)."""
    from pathlib import Path

    from rich.table import Table

    from loom import catalog, registry
    from loom.apps.eval_summaries import evaluate, read_pairs

    pairs = read_pairs(Path(data), text_col, summary_col)
    name = model or catalog.default_chat_model()
    backend = registry.open_backend(name, max_batch=4) if name else None
    report = evaluate(pairs, sentences, backend, progress=not json_out)
    if json_out:
        print_json(report)
        return
    table = Table("system", "ROUGE-1", "ROUGE-2", "ROUGE-L", title=f"{report['documents']} documents")
    for system, r in report["results"].items():
        table.add_row(system, f"{r['rouge1']:.4f}", f"{r['rouge2']:.4f}", f"{r['rougeL']:.4f}")
    stdout_console().print(table)


@app.command()
def translate(
    data: str = typer.Option(..., "--data", help=".jsonl/.csv with source and reference columns"),
    to: str = typer.Option(..., "--to", help="target language of the references: zh | en"),
    model: str = typer.Option(None, help="chat model (default: `loom models default`)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """chrF and BLEU of a chat model's translations against references (sacrebleu)."""
    from pathlib import Path

    from loom import catalog, registry
    from loom.apps.translate import translate as run
    from loom.apps.eval_summaries import read_pairs
    from loom.eval.text import translation_scores

    pairs = read_pairs(Path(data), "source", "reference")
    backend = registry.open_backend(catalog.chat_model_for(model, "translation"), max_batch=4)
    outputs = [run(src, to, backend).text for src, _ in pairs]
    scores = translation_scores(outputs, [ref for _, ref in pairs], to) | {"sentences": len(pairs), "model": backend.name}
    backend.close()
    if json_out:
        print_json(scores)
    else:
        kv_table(f"translation into {to}", scores)


@app.command("chat")
def chat(
    model: str = typer.Argument(..., help="chat model: run name (a LoRA run too), registered model, folder or .gguf"),
    data: str = typer.Option(..., "--data", "-d", help="conversations (.jsonl, messages/alpaca/sharegpt): the last "
                             "assistant turn of each is the reference"),
    metric: str = typer.Option("contains", help="exact | contains | rouge | chrf"),
    limit: int = typer.Option(0, help="score only the first N examples (0 = all)"),
    max_tokens: int = typer.Option(128, help="answer length limit in tokens"),
    max_batch: int = typer.Option(16, help="answers decoded together"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps"),
    show: int = typer.Option(5, help="print this many answers that scored lowest"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON (the score under the metric's name)"),
) -> None:
    """Answer each example's last user turn (greedy, batched) and score it against the reference."""
    from loom.apps.eval_chat import evaluate_chat

    result = evaluate_chat(model, data, metric, limit, max_tokens, max_batch, device, progress=not json_out)
    if json_out:
        print_json(result)
        return
    kv_table(f"{model} on {data}", {k: result[k] for k in (metric, "examples", "seconds", "seconds_per_example")})
    console = stdout_console()
    for r in sorted(result["results"], key=lambda r: r[metric])[:show]:
        console.print(f"[dim]{r[metric]:.2f}[/dim] Q: {r['prompt'][:100]!r}\n     ref: {r['reference'][:100]!r}\n     got: {r['answer'][:100]!r}",
                      soft_wrap=True, highlight=False)
