"""`loom`: the command tree. Errors the user can fix print `error:` + `hint:` and exit 2."""

from __future__ import annotations

import os
import sys

import typer

from loom.cli import agent, classify as classify_cmd, data, eval as eval_cmd, kb, kg, mcp, models, recommend, tokenizer
from loom.cli.doctor import doctor
from loom.cli.export import export
from loom.cli.generate import generate
from loom.cli.ocr import ocr
from loom.cli.pretrain import pretrain
from loom.cli.quickstart import quickstart
from loom.cli.serve import chat, keys_app, serve
from loom.cli.sft import finetune_sft
from loom.cli.transcribe import transcribe
from loom.cli.write import report, summarize, translate, write

app = typer.Typer(
    help="Loom: from raw text to a running language model, offline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data.app, name="data")
app.add_typer(tokenizer.app, name="tokenizer")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(models.app, name="models")
classify_cmd.finetune_app.command("sft")(finetune_sft)
app.add_typer(classify_cmd.finetune_app, name="finetune")
app.add_typer(classify_cmd.datasets_app, name="datasets")
app.add_typer(keys_app, name="keys")
app.add_typer(kb.app, name="kb")
app.add_typer(kb.support_app, name="support")
app.add_typer(kg.app, name="kg")
app.add_typer(recommend.app, name="recommend")
app.add_typer(mcp.app, name="mcp")
app.add_typer(agent.app, name="agent")
eval_cmd.app.command("recommend")(recommend.evaluate)
app.command()(pretrain)
app.command()(generate)
app.command()(export)
app.command()(quickstart)
app.command()(classify_cmd.classify)
app.command()(serve)
app.command()(chat)
app.command()(doctor)
app.command()(summarize)
app.command()(report)
app.command()(write)
app.command()(translate)
app.command()(ocr)
app.command()(transcribe)


def main() -> None:
    from loom.errors import LoomError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # silence fork warnings from data workers
    try:
        app()
    except LoomError as e:
        from loom.cli.output import console

        console.print(f"[bold red]error:[/bold red] {e.message}", markup=True, highlight=False)
        if e.hint:
            console.print(f"[yellow]hint:[/yellow] {e.hint}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
