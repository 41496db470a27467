"""One typed config per stage, loaded from YAML presets (configs/) with CLI overrides on top.

    load(PretrainConfig, "configs/pretrain/tiny.yaml", {"train.max_steps": 50})

Every model forbids unknown keys and range-checks its values, so a typo in a YAML file is an error
that names the key, not a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loom import home
from loom.errors import ConfigError, InputError


# The YAML presets live beside src/ in the repository (Loom installs editable from it).
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"  # package data: presets travel with an installed wheel
# (the checkout's top-level configs/ is a link to this folder, so `--config configs/...` works there too)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """`loom data prepare`: reading, cleaning, filtering and deduplicating raw text."""

    text_field: str = Field("text", description="field holding the text in .jsonl/.csv/.parquet inputs")
    split: Literal["paragraph", "line", "file"] = Field(
        "paragraph", description=".txt/.md: one document per blank-line-separated block, per line, or per file"
    )
    encoding: str = Field("utf-8", description="encoding of text inputs (a BOM is accepted); e.g. gb18030")
    min_chars: int = Field(20, ge=0, description="drop documents shorter than this after cleaning, in Latin-letter "
                           "units: a Han, Kana or Hangul character counts as 4 (about one English word with its space), "
                           "so a 5-character Chinese sentence passes the default 20 while a 3-letter fragment does not")
    max_chars: int = Field(1_000_000, ge=1, description="drop documents longer than this (likely dumps)")
    min_letter_ratio: float = Field(
        0.5, ge=0.0, le=1.0, description="junk filter: share of letters/CJK among non-space characters"
    )
    max_repeat_line_ratio: float = Field(
        0.5, ge=0.0, le=1.0, description="junk filter: drop if this share of lines are duplicates of each other"
    )
    exact_dedup: bool = Field(True, description="drop documents identical after normalisation")
    near_dedup: bool = Field(True, description="drop near duplicates found by MinHash/LSH")
    near_dup_threshold: float = Field(0.8, gt=0.0, le=1.0, description="estimated Jaccard similarity to call a near duplicate")
    num_perm: int = Field(64, ge=16, le=512, description="MinHash permutations; more = more accurate, slower")
    shingle_size: int = Field(5, ge=1, le=32, description="characters per shingle (works for CJK and spaced scripts)")
    remove_stopwords: bool = Field(False, description="remove English/Chinese stop words (classical pipelines only)")
    lowercase: bool = Field(False, description="lowercase everything (classical pipelines only)")
    workers: int = Field(0, ge=0, le=64, description="cleaning processes: 0 = auto (one per core for inputs over 16 MB), 1 = in-process")


class TokenizeConfig(_Strict):
    """`loom data tokenize`: packing a prepared dataset into token shards."""

    val_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="share of documents held out for validation")
    seed: int = Field(0, description="decides which documents go to validation")
    batch_docs: int = Field(1000, ge=1, description="documents encoded per batch")


class TokenizerConfig(_Strict):
    """`loom tokenizer train`."""

    kind: Literal["bpe", "char"] = Field("bpe", description="byte-level BPE, or characters with byte fallback")
    vocab_size: int = Field(8000, ge=300, le=1_000_000, description="bpe: target vocabulary incl. 256 bytes and specials")
    min_frequency: int = Field(2, ge=1, description="bpe: merges seen fewer times are not learnt")
    max_chars: int = Field(0, ge=0, description="char: keep only the most frequent N characters (0 = all)")


class ModelConfig(_Strict):
    """Llama-style decoder shape. `preset` fills the sizes; explicit fields override it."""

    preset: str | None = Field(None, description="named size from loom.model.presets (nano, tiny, small, base)")
    n_layer: int | None = Field(None, ge=1, le=128)
    n_head: int | None = Field(None, ge=1, le=128)
    n_kv_head: int | None = Field(None, ge=1, le=128, description="grouped-query attention heads; default n_head")
    d_model: int | None = Field(None, ge=8, le=16384)
    d_ff: int | None = Field(None, ge=8, le=65536, description="SwiGLU hidden size; default ~8/3 d_model")
    max_seq_len: int = Field(256, ge=8, le=131072, description="context length in tokens")
    rope_theta: float = Field(10000.0, gt=0)
    tie_embeddings: bool = Field(True, description="share input and output embeddings (saves vocab*d params)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="attention dropout")


class TrainConfig(_Strict):
    """The training loop (loom.train.loop)."""

    batch_size: int = Field(8, ge=1, description="sequences per micro-batch per process")
    seq_len: int = Field(256, ge=8, description="tokens per sequence; <= model.max_seq_len")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_steps: int = Field(1000, ge=1, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, le=1.0, description="peak learning rate")
    min_lr: float = Field(1e-4, ge=0, description="floor of the cosine decay")
    warmup_steps: int = Field(100, ge=0, description="linear warmup from 0 to lr")
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, gt=0, lt=1)
    beta2: float = Field(0.95, gt=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 disables clipping")
    dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="autocast: auto = bf16 on GPUs that have it, fp32 elsewhere (bf16 is ~4x slower on CPUs "
        "without bf16 units)")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="auto = a GPU when there is one (loom.runtime)")
    compile: bool = Field(False, description="torch.compile the model (40-70 s cold start on CPU)")
    eval_every: int = Field(200, ge=1, description="steps between validation passes")
    eval_iters: int = Field(20, ge=1, description="validation batches per pass")
    log_every: int = Field(10, ge=1, description="steps between metrics.jsonl lines")
    save_every: int = Field(500, ge=1, description="steps between checkpoints")
    keep_last: int = Field(2, ge=1, description="checkpoints kept on disk")
    seed: int = Field(1337)
    threads: int = Field(0, ge=0, description="torch threads per process; 0 = free cores / processes")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must be <= lr ({self.lr})")
        return self


class PretrainConfig(_Strict):
    """`loom pretrain`: model shape + loop settings."""

    model: ModelConfig = Field(default_factory=lambda: ModelConfig(preset="tiny"))
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _check(self) -> "PretrainConfig":
        if self.train.seq_len > self.model.max_seq_len:
            raise ValueError(
                f"train.seq_len ({self.train.seq_len}) exceeds model.max_seq_len ({self.model.max_seq_len})"
            )
        return self


class ClassifyConfig(_Strict):
    """`loom finetune classify`: which base, and how to train it."""

    base: str = Field("tfidf", description="tfidf | minilm (English) | e5 (multilingual, Chinese) | a Loom run, registered model, HF folder "
                      "or GGUF model; a+b (e.g. tfidf+e5) is a soft-voting ensemble of those")
    epochs: int = Field(4, ge=1, le=1000, description="neural: passes over the training data (early stopping may end sooner)")
    min_steps: int = Field(60, ge=0, description="neural: at least this many steps, so tiny datasets are learnt")
    batch_size: int = Field(16, ge=1, le=4096)
    lr: float = Field(5e-5, gt=0, le=1.0, description="neural: peak learning rate (LoRA wants ~10x more)")
    max_len: int = Field(128, ge=8, le=8192, description="neural: tokens per text; longer texts are truncated")
    patience: int = Field(2, ge=1, description="neural: epochs without a better val macro-F1 before stopping")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="stratified validation split when no --val file is given")
    class_weights: bool = Field(True, description="weigh classes by inverse frequency (imbalanced data)")
    freeze_embeddings: bool = Field(
        True, description="neural: keep the input word embeddings fixed. With e5's 250k-piece vocabulary they are 96M of "
                          "118M weights: freezing trains 1.7x faster, and rows unseen in small data stay aligned")
    lora: bool = Field(False, description="neural: train LoRA adapters (peft) instead of all weights")
    lora_r: int = Field(8, ge=1, le=256)
    c: float = Field(10.0, gt=0, description="tfidf: inverse regularisation strength of the linear model (when not tuned)")
    tune: bool = Field(True, description="tfidf on small single-label data (no --val file, at most cv_max_examples rows): "
                       "choose features, C and class weighting by cross-validation on the whole file, then train on all "
                       "of it; c and class_weights above are then candidates, not fixed")
    cv_folds: int = Field(5, ge=2, le=20, description="tfidf tuning: stratified folds (fewer when a class is rarer)")
    cv_max_examples: int = Field(1000, ge=0, description="tfidf tuning: larger files use the fixed settings, are scored "
                                 "on a validation split and then refitted on every row (CV on 1,700 news articles took "
                                 "5 min for no gain)")
    seed: int = Field(0)
    threads: int = Field(0, ge=0, description="torch threads (0 = free cores)")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="where neural bases fine-tune (loom.runtime): auto = a GPU when there is one; tfidf uses the CPU")


class SFTConfig(_Strict):
    """`loom finetune sft`: instruction tuning a chat model on conversations."""

    base: str = Field("smollm2", description="chat model to tune: a built-in (smollm2), a pulled one (qwen2.5-0.5b), a Loom "
                      "run or an HF folder; GGUF bases are tuned from their dequantised fp32 copy")
    template: Literal["chatml"] | None = Field(None, description="chat template for a base without one (adds its special "
                                                "tokens); None = the base's own template")
    lora: bool = Field(True, description="train LoRA adapters (peft) instead of every weight")
    qlora: bool = Field(False, description="LoRA over a 4-bit (NF4) base: CUDA only, needs bitsandbytes (pip install 'loom[gpu]')")
    lora_r: int = Field(16, ge=1, le=1024, description="adapter rank")
    lora_alpha: int = Field(32, ge=1, description="adapter scale numerator: updates are scaled by alpha / r")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["all-linear"], description="layers that get adapters: "
                                      "all-linear (every linear layer but the output head), or names such as q_proj, v_proj")
    epochs: float = Field(3.0, gt=0, le=1000, description="passes over the training data (ignored when max_steps > 0)")
    max_steps: int = Field(0, ge=0, description="optimizer steps; 0 = as many as `epochs` takes")
    lr: float = Field(2e-4, gt=0, le=1.0, description="peak learning rate (LoRA ~1e-4..5e-4; full tuning ~1e-5..5e-5)")
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="share of steps warming up linearly; then linear decay to 0")
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, ge=0.0, description="max global grad norm; 0 disables clipping")
    batch_size: int = Field(8, ge=1, le=4096, description="sequences per micro-batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_len: int = Field(1024, ge=16, le=131072, description="tokens per example (or per packed row); longer ones are cut, and counted")
    packing: bool = Field(False, description="pack several examples into one max_len row (each attends only to itself): "
                          "fewer padding tokens, more examples per step")
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="share held out for validation when no --val file is given")
    val_max: int = Field(200, ge=0, description="at most this many held-out examples (validation loss is measured on all of them)")
    eval_every: int = Field(100, ge=1, description="steps between validation passes (and one at the end)")
    log_every: int = Field(10, ge=1, description="steps between metrics.jsonl lines")
    save_every: int = Field(200, ge=1, description="steps between resumable checkpoints")
    dtype: Literal["auto", "fp32", "bf16"] = Field("auto", description="autocast: auto = bf16 on GPUs that have it, fp32 on CPU")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="auto = a GPU when there is one (loom.runtime)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass: less memory, ~30% slower")
    compile: bool = Field(False, description="torch.compile the decoder (GPUs: ~1.5x on small models; a minute of compiling first)")
    max_batch_tokens: int = Field(0, ge=0, description="most tokens (rows x longest row) in one forward pass: a larger "
                                  "micro-batch is split into several, with the same result. 0 = auto: on a CPU, sized to "
                                  "the memory free after loading the model; on a GPU, no limit")
    fsdp: bool = Field(False, description="under torchrun: shard weights, gradients and optimizer state across the processes "
                       "(FSDP) instead of a full copy each (DDP), for bases that do not fit one GPU")
    seed: int = Field(0)
    threads: int = Field(0, ge=0, description="torch threads (0 = free cores)")


class GenerateConfig(_Strict):
    """`loom generate`: sampling settings."""

    max_new_tokens: int = Field(200, ge=1, le=100_000)
    temperature: float = Field(0.8, ge=0.0, le=5.0, description="0 = greedy")
    top_k: int = Field(50, ge=0, description="0 disables top-k")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling mass; 1 disables")
    repetition_penalty: float = Field(1.0, ge=1.0, le=3.0, description="CTRL-style; 1 disables")
    stop: list[str] = Field(default_factory=list, description="stop strings, not included in the output")
    seed: int | None = Field(None, description="fix the sampling RNG for reproducible output")


class MediaConfig(_Strict):
    """Limits on images, scanned documents and recordings (loom.media); the serve config's `media:` section."""

    max_bytes: int = Field(50 * 1024 * 1024, ge=1024, description="one image or PDF file")
    max_pixels: int = Field(60_000_000, ge=10_000, description="one image or rendered page (an A4 page at 300 dpi is "
                            "8.7 MP); larger ones are refused before decoding (decompression bombs)")
    max_pages: int = Field(500, ge=1, description="pages of one PDF")
    seconds_per_document: float = Field(900.0, gt=0, description="OCR time for one file, all its pages")
    pdf_dpi: int = Field(200, ge=72, le=600, description="resolution at which image-only PDF pages are rendered for OCR")
    ocr_engine: Literal["rapidocr", "tesseract"] = Field(
        "rapidocr", description="rapidocr: the bundled PP-OCR models (Chinese, English); tesseract: when installed")
    fetch_image_urls: bool = Field(False, description="let chat requests name http(s) images for the server to fetch; "
                                   "off: only data: URLs (a server must not fetch arbitrary URLs for a caller)")
    audio_max_bytes: int = Field(200 * 1024 * 1024, ge=1024, description="one recording (an upload, a CLI or KB file)")
    audio_max_seconds: float = Field(4 * 3600.0, gt=0, description="one recording's duration; longer ones are refused "
                                     "from the header before decoding, or as soon as the decoded audio passes it")


class AppModels(_Strict):
    """Which chat model each app of `loom serve` uses when a request names none; the serve config's `apps:`
    section. Unset = the default chat model (`loom models default NAME`). Lets an operator give the
    written-answer apps the stronger model and keep the fast one where speed matters (docs/models.md)."""

    summarize: str | None = Field(None, description="POST /v1/summarize with mode abstractive")
    translate: str | None = Field(None, description="POST /v1/translate")
    write: str | None = Field(None, description="POST /v1/write (content generation from a template)")
    support: str | None = Field(None, description="writes answers for `support:KB` when the KB names no model of its own "
                                "(loom kb create --model); unset = extractive answers, the passage itself")
    agent: str | None = Field(None, description="runs `agent:NAME` when the agent's YAML names no model")
    support_reader: str = Field("auto", description="checks that a passage answers before `support:KB` answers from it "
                                "(apps/support/reader.py): auto = the support writer or the default chat model when it is "
                                "qwen2.5-1.5b, off = none, else a model name")

    @model_validator(mode="after")
    def _names_only(self) -> "AppModels":
        for app, name in self.model_dump().items():
            if name is not None and not home.is_model_name(name):
                raise ValueError(f"apps.{app}: {name!r} is not a model name (see `loom models list`); a config names models, "
                                 "never paths")
        return self


class ServeConfig(_Strict):
    """`loom serve`: the OpenAI-compatible server."""

    host: str = Field("127.0.0.1", description="interface to bind; 0.0.0.0 exposes the server to the network")
    port: int = Field(8000, ge=1, le=65535)
    preload: list[str] = Field(default_factory=list, description="model names (loom models list) loaded at startup; "
                               "others load on first use. A path to a model is accepted only as `loom serve --preload PATH`")
    preload_default_chat: bool = Field(False, description="also load the default chat model (`loom models default`) at "
                                       "startup, whichever it is: what `make run`'s preset does")
    engine: Literal["auto", "transformers", "llama.cpp"] = Field(
        "auto", description="GGUF engine: auto (llama.cpp on a CPU when installed, else transformers), "
        "llama.cpp (quantised kernels, batched) or transformers (dequantised fp32, batched; the GPU path)")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="where local transformers models run (loom.runtime): auto = a GPU when there is one")
    isolate_engines: bool = Field(
        True, description="run each llama.cpp model in a supervised child process, so a native crash fails its requests "
        "(503) and restarts the engine instead of killing the server; false = in the server process (benchmarks)")
    max_batch: int = Field(16, ge=1, le=256, description="sequences decoded together per local model")
    max_queue: int = Field(64, ge=1, description="waiting requests per local model before answering 503")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="larger request bodies get 413 (chat image parts "
                                "included: ~3 MB of image as base64)")
    max_upload_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="file uploads to a knowledge base (POST "
                                  "/v1/kb/NAME/files, all files of one request): scans are large")
    default_max_tokens: int = Field(512, ge=1, description="when a request sets neither max_tokens nor max_completion_tokens")
    kb_import_dirs: list[str] = Field(
        default_factory=list, description="folders on this machine from which admin keys may import files into knowledge "
        "bases by path (POST /v1/kb/NAME/documents {\"paths\": [...]}); empty = the API never reads server files")
    media: MediaConfig = Field(default_factory=MediaConfig, description="images and scans: limits, OCR engine")
    apps: AppModels = Field(default_factory=AppModels, description="the chat model of each app (unset: the default one)")
    api_docs: Literal["keyed", "public", "off"] = Field(
        "keyed", description="/openapi.json and /docs: keyed = need a key once keys exist (like the API), public = "
        "always open, off = 404")

    @field_validator("preload")
    @classmethod
    def _names_only(cls, names: list[str]) -> list[str]:
        """A config file can be edited by more people than the command line, so it names models only:
        a path here would let whoever writes the file make the server open any file."""
        for name in names:
            if not home.is_model_name(name):
                raise ValueError(f"{name!r} is not a model name: preload lists names from `loom models list`; "
                                 "pass a path on the command line instead (loom serve --preload PATH)")
        return names


class AgentConfig(_Strict):
    """An agent (`agent:NAME`): a chat model that calls Loom's built-in tools in a loop until it answers."""

    model: str | None = Field(None, description="chat model that decides and answers (None: the default chat model)")
    instructions: str = Field("", max_length=8000, description="the system message: role, tone, when to use which tool")
    tools: list[str] = Field(default_factory=list, description="tools it may call: built-in (kb_search, kg_neighbors, "
                             "calculator, ...), HTTP tools by name, MCP tools as SERVER__TOOL or SERVER__* (every tool of "
                             "that server), all declared in agent-tools.yaml; nothing else can be called")
    first_step: Literal["auto", "required"] = Field(
        "auto", description="required: the first step must call a tool (an agent that always looks things up first)")
    plan: bool = Field(True, description="first ask the model which separate things the question asks, and look each up "
                       "(a small model otherwise makes one call and answers the rest from nowhere; apps/agent/plan.py)")
    max_steps: int = Field(4, ge=1, le=20, description="model turns; at the limit it answers from what it has")
    max_seconds: float = Field(120.0, gt=0, le=3600, description="wall time for one question, tools included")
    max_tokens: int = Field(512, ge=16, le=8192, description="tokens per model turn")


class HttpTool(_Strict):
    """An HTTP endpoint agents may call (issue 33.3), declared by the operator in LOOM_HOME/agent-tools.yaml
    (`loom agent connect http` or `connect openapi`), never by a request."""

    description: str = Field(..., min_length=1, max_length=1000, description="what it does: the model reads this")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str = Field(..., description="http(s) URL; {name} marks a path parameter filled from the arguments "
                     "(https://shop.example/api/orders/{order_id}); other arguments go in the query (GET, DELETE) or a JSON body")
    parameters: dict = Field(default_factory=lambda: {"type": "object", "properties": {}},
                             description="JSON Schema of the arguments (an object)")
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every call; ${VAR} is read from the "
                                    "server's environment at call time (secrets stay out of the file, the model and traces)")
    timeout: float = Field(10.0, gt=0, le=300, description="seconds per call")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(url.replace("{", "").replace("}", ""))
        if parts.scheme not in ("http", "https") or not parts.netloc or "{" in url.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError(f"{url!r} is not an http(s) URL with a fixed host (parameters go in the path only)")
        return url


class McpConnection(_Strict):
    """An MCP server whose tools agents may use (issue 33.5): a command run over stdio, or a streamable-HTTP URL."""

    command: list[str] | None = Field(None, description="stdio: the server's command line, e.g. [python, server.py]")
    url: str | None = Field(None, description="streamable HTTP: the server's MCP endpoint, e.g. http://127.0.0.1:8001/mcp")
    headers: dict[str, str] = Field(default_factory=dict, description="HTTP headers; ${VAR} is read from the environment")
    env: dict[str, str] = Field(default_factory=dict, description="stdio: extra environment; ${VAR} is read from the server's")
    tools: list[str] | None = Field(None, description="which of its tools agents may use (None = all it lists)")
    timeout: float = Field(30.0, gt=0, le=600, description="seconds per call")

    @model_validator(mode="after")
    def _one_transport(self) -> "McpConnection":
        if bool(self.command) == bool(self.url):
            raise ValueError("an MCP server is either a command (stdio) or a url (streamable HTTP)")
        return self


class AgentTools(_Strict):
    """LOOM_HOME/agent-tools.yaml: the operator's HTTP tools and MCP servers, by name."""

    http: dict[str, HttpTool] = Field(default_factory=dict)
    mcp: dict[str, McpConnection] = Field(default_factory=dict)


class SupportConfig(_Strict):
    """`loom support`: answering customer questions from a knowledge base."""

    k: int = Field(4, ge=1, le=20, description="passages retrieved per question")
    model: str | None = Field(None, description="chat model that writes answers from the passages; None = extractive answers")
    min_score: float | None = Field(
        None, description="hand over to a person unless the evidence (the best passage's similarity placed between the "
        "KB's off-topic level (0) and the level of its own FAQ questions and headings (1), plus credit for the question's "
        "rare words in the passage, less its words the KB never uses) reaches this; None = the cross-validated default "
        "(loom.apps.support.answerable.MIN_SCORE, or READER_MIN_SCORE when a reader checks the passage; docs/support.md)")
    handoff_below: float | None = Field(
        None, ge=-1.0, le=1.0, description="override: hand over when the best passage's raw cosine similarity is below "
        "this (None = use the calibrated min_score)")
    faq_above: float | None = Field(
        None, ge=-1.0, le=1.0, description="override: answer with the FAQ answer when a FAQ question's raw cosine "
        "similarity is at least this (None = calibrated: answerable.FAQ_MIN_SCORE of the way from off-topic questions to "
        "the FAQ question itself)")
    max_tokens: int = Field(256, ge=1, description="answer length limit for the chat model")
    reader: str | None = Field(
        "auto", description="chat model that reads the chosen passage before Loom answers from it and says whether it "
        "answers the question (apps/support/reader.py): 'auto' = the writer or the default chat model when it is one the "
        "reader weights were measured with (qwen2.5-1.5b), 'off' = none, else a model name")

    @field_validator("reader")
    @classmethod
    def _reader_is_a_name(cls, name: str | None) -> str | None:
        if name not in (None, "auto", "off") and not home.is_model_name(name):
            raise ValueError(f"reader {name!r} is not a model name: name one from `loom models list`, 'auto' or 'off'")
        return name

    graph: bool | None = Field(None, description="add the knowledge-graph facts around the question's entities (the "
                               "graph `loom kg build KB` made), cited; None = when the KB has a graph")
    graph_hops: int = Field(2, ge=1, le=3, description="how far from the question's entities graph facts may be")
    graph_facts: int = Field(6, ge=1, le=20, description="at most this many graph facts per answer")


C = TypeVar("C", bound=BaseModel)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted!r}: {key!r} is not a section", "check the key path")
    node[keys[-1]] = value


def preset_path(path: str | Path) -> Path:
    """A YAML file, or a preset shipped with Loom named like "pretrain/tiny" or "configs/pretrain/tiny.yaml"
    (found in the package, so it works from any folder and from an installed wheel)."""
    p = Path(path)
    if p.is_file():
        return p
    relative = Path(*[part for part in p.parts if part != "configs"]) if not p.is_absolute() else p
    shipped = CONFIGS_DIR / relative.with_suffix(".yaml") if relative.suffix != ".yaml" else CONFIGS_DIR / relative
    if not p.is_absolute() and shipped.is_file():
        return shipped
    presets = sorted(str(f.relative_to(CONFIGS_DIR).with_suffix("")) for f in CONFIGS_DIR.rglob("*.yaml"))
    raise InputError(f"config file not found: {p}", f"pass a YAML file or a shipped preset: {', '.join(presets)}")


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = preset_path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}", "fix the syntax of that file") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level", "write key: value pairs")
    return data


def load(cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> C:
    """Validate YAML (optional) + dotted overrides (None values are skipped) into `cls`."""
    tree = read_yaml(path) if path else {}
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, key, value)
    try:
        return cls.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_describe(e, path), "fix or remove the keys named above") from e


def _describe(err: ValidationError, path: str | Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key {key!r}")
        else:
            lines.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return f"invalid config{where}: " + "; ".join(lines)
