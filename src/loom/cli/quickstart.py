"""`loom quickstart`: the whole pipeline on a bundled English + Chinese corpus, in a few minutes."""

from __future__ import annotations

import time

import typer

from loom.cli.output import console


def quickstart(
    steps: int = typer.Option(400, help="pretraining steps (val loss bottoms out near 400 on this corpus)"),
    name: str = typer.Option("quickstart", help="prefix of the dataset, tokenizer and run names"),
    prompt: list[str] = typer.Option(["Tell me a joke.", "你喜欢什么？"], "--prompt", help="prompt(s) for the generated samples"),
) -> None:
    """Prepare -> tokenizer -> tokenize -> pretrain -> evaluate -> generate, on bundled data."""
    import shutil

    from rich.markup import escape

    from loom import home
    from loom.config import CONFIGS_DIR, DataConfig, GenerateConfig, PretrainConfig, TokenizeConfig, TokenizerConfig, load
    from loom.data.bundled import write_dialogue_corpus
    from loom.data.prepare import prepare
    from loom.tokenizer.shards import tokenize_dataset
    from loom.eval.lm import evaluate_perplexity
    from loom.backends.local import generate
    from loom.model.load import load_model
    from loom.catalog import resolve
    from loom.tokenizer.train import train_tokenizer
    from loom.train.pretrain import pretrain

    t0 = time.perf_counter()
    console.rule("[bold]1/6 corpus")
    source = home.sources_dir() / "chatterbot-en-zh.jsonl"
    counts = write_dialogue_corpus(source)
    console.print(f"{counts} conversations -> {source}")
    console.rule("[bold]2/6 data prepare")
    report = prepare([str(source)], name, DataConfig(min_chars=5), overwrite=True)
    console.print(f"{report['documents_in']} documents in, {report['documents_out']} out, removed {report['removed']}, scripts {report['chars_by_script']}")
    console.rule("[bold]3/6 tokenizer")
    tok = train_tokenizer(name, name, TokenizerConfig(kind="bpe", vocab_size=2000), overwrite=True)
    meta = tokenize_dataset(name, name, TokenizeConfig(val_fraction=0.1))
    console.print(f"vocab {tok['vocab_size']}; {meta['train_tokens']} train / {meta['val_tokens']} val tokens")
    console.rule("[bold]4/6 pretrain")
    shutil.rmtree(home.run_dir(name), ignore_errors=True)  # quickstart always starts fresh
    overrides = {"train.max_steps": steps, "train.eval_every": max(50, steps // 6), "train.save_every": max(100, steps // 3)}
    preset = CONFIGS_DIR / "pretrain" / "quickstart.yaml"
    result = pretrain(name, name, load(PretrainConfig, preset if preset.is_file() else None, overrides))
    console.rule("[bold]5/6 evaluate")
    ppl = evaluate_perplexity(name, name, "val", seq_len=128, progress=False)
    console.print(f"val loss {ppl['loss']:.4f}, perplexity {ppl['perplexity']:.2f} over {ppl['tokens']} tokens")
    console.rule("[bold]6/6 generate")
    model, tokenizer = load_model(resolve(name))
    for text in prompt:
        sample = "".join(generate(model, tokenizer, text, GenerateConfig(max_new_tokens=60, seed=0, temperature=0.7)))
        console.print(f"[bold]{escape(text)}[/bold]{escape(sample)}")
    console.rule()
    console.print(f"done in {time.perf_counter() - t0:.0f} s; {result['params'] / 1e6:.2f}M params")
    console.print(f"dataset   {home.dataset_dir(name)}\ntokenizer {home.tokenizer_dir(name)}\nrun       {result['path']}  (metrics.jsonl, loss.png, checkpoints/)\nmodel     {result['model']}  (Hugging Face format, registered as '{name}')")
    console.print(f"next: loom generate {name} --prompt \"你好\"   |   loom eval perplexity {name} --data {name}")
