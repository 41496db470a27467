"""The backend contract: the one interface the server and the apps see.

    backend = loom.backends.get("smollm2")           # the registry picks the class
    backend.info()                                    -> Info
    backend.chat(messages, Sampling(max_tokens=64))   -> Completion
    for chunk in backend.stream(Request(messages=..., sampling=...)): ...   -> Chunk
    backend.complete("Once upon a time", Sampling())  -> Completion
    backend.embed(["text", ...])                      -> Embeddings
    for seg in backend.transcribe(audio, Transcribe(language="zh")): ...   -> Segment (speech models)

`stream` is the primitive; `chat` and `complete` collect it. Closing the stream iterator (a client
that went away) stops the generation. Types here are internal: OpenAI's wire shapes live in
loom.serve.schema only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Literal

from loom.errors import InputError, LoomError
from loom.model.tools import ToolSet


class Overloaded(LoomError):
    """The backend's queue is full: retry later (HTTP 503)."""


class Unsupported(LoomError):
    """The backend cannot do this (e.g. embeddings from a chat model): HTTP 400."""


class ContextTooLong(InputError):
    """Prompt plus requested tokens exceed the model's context (HTTP 400)."""


@dataclass
class Sampling:
    max_tokens: int = 256
    temperature: float = 1.0  # OpenAI's default; 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off (OpenAI has no top_k; vLLM-style servers accept it as an extra field)
    repetition_penalty: float = 1.0  # 1 = off
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    json_object: bool = False  # constrain output to one JSON object that parses
    json_schema: dict | None = None  # constrain output to this JSON Schema (model.constrain)
    logprobs: int | None = None  # None: off; k (0-20): each token's logprob and its k most likely alternatives


@dataclass
class Request:
    """Exactly one of messages (chat, formatted with the model's template) or prompt (raw completion)."""

    sampling: Sampling = field(default_factory=Sampling)
    messages: list[dict] | None = None
    prompt: str | list[int] | None = None
    tools: ToolSet | None = None  # functions the model may call (chat only); see model.tools


@dataclass
class Chunk:
    text: str = ""
    finish_reason: Literal["stop", "length", "tool_calls"] | None = None  # set on the last chunk only
    prompt_tokens: int = 0  # set on the last chunk
    completion_tokens: int = 0  # set on the last chunk
    extra: dict | None = None  # last chunk: structured extras the server passes on (e.g. citations)
    logprobs: list | None = None  # model.decode.TokenLogprob of the tokens whose text this chunk carries
    tool_calls: list[dict] | None = None  # deltas: {index, id, name, arguments: ""} once, then {index, arguments: piece}


@dataclass
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    extra: dict | None = None
    tool_calls: list[dict] = field(default_factory=list)  # [{id, name, arguments}] joined from the deltas


@dataclass
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass
class Info:
    name: str
    backend: str
    capabilities: list[str]  # subset of chat, complete, embed, classify, transcribe, translate, speech
    context_length: int | None = None
    description: str = ""
    owned_by: str = "loom"


@dataclass
class Transcribe:
    """Options of one transcription (the fields of OpenAI's /v1/audio/transcriptions, in internal form)."""

    language: str | None = None  # ISO-639-1 ("zh", "en"); None: detected per stretch of speech
    task: Literal["transcribe", "translate"] = "transcribe"  # translate: English text from any language
    prompt: str | None = None  # earlier text or spellings to follow
    temperature: float = 0.0  # 0: greedy with Whisper's fallback to higher temperatures on failure
    words: bool = False  # word-level timestamps
    simplified: bool = True  # Chinese in Simplified characters (Whisper writes Traditional for Mandarin)


@dataclass
class Word:
    start: float  # seconds from the start of the recording
    end: float
    word: str
    probability: float = 1.0


@dataclass
class Segment:
    id: int
    start: float  # seconds from the start of the recording
    end: float
    text: str
    language: str  # ISO-639-1 of this stretch of speech
    words: list[Word] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0
    temperature: float = 0.0
    tokens: list[int] = field(default_factory=list)


class Backend:
    """Base class with the derived calls; subclasses implement info and stream (and/or embed)."""

    name: str = ""

    def info(self) -> Info:
        raise NotImplementedError

    def stream(self, request: Request) -> Iterator[Chunk]:
        raise Unsupported(f"model {self.name!r} does not generate text", "use a chat or completion model")

    def embed(self, inputs: list[str] | list[list[int]], query: bool = False) -> Embeddings:
        """Vectors for texts (or token-id lists); query=True marks search queries for encoders that
        embed queries and passages differently (e5); others ignore it."""
        raise Unsupported(f"model {self.name!r} does not produce embeddings", "use an embedding model, e.g. minilm")

    def classify(self, texts: list[str], explain: bool = False) -> list[dict]:
        """[{label, probabilities: {label: p}}] per text (+ explanation: [[token, weight], ...] when asked)."""
        raise Unsupported(f"model {self.name!r} is not a classifier", "train one with `loom finetune classify`")

    def transcribe(self, audio, options: Transcribe | None = None) -> Iterator[Segment]:
        """Segments of speech (loom.media.audio.Audio in), in order, as they are recognised."""
        raise Unsupported(f"model {self.name!r} does not transcribe speech", "use a transcription model, e.g. whisper-base")

    def speak(self, text: str, speed: float = 1.0) -> tuple[int, Iterator]:
        """(sample rate, int16 mono sample chunks) of `text` spoken (speech-output models)."""
        raise Unsupported(f"model {self.name!r} does not speak", "use tts-1 (Piper, the optional speech extra)")

    async def astream(self, request: Request) -> AsyncIterator[Chunk]:
        """Async twin of stream for the server. Default: the sync stream, one chunk per worker-thread hop;
        backends with their own event-driven engine override it."""
        import anyio

        chunks = self.stream(request)
        done = object()
        try:
            while (chunk := await anyio.to_thread.run_sync(next, chunks, done)) is not done:
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close:
                await anyio.to_thread.run_sync(close)

    def count_tokens(self, text: str) -> int:
        """Tokens in text by this model's tokenizer (rate limits and usage); ~4 chars/token if unknown."""
        return max(1, len(text) // 4)

    def chat(self, messages: list[dict], sampling: Sampling | None = None) -> Completion:
        return collect(self.stream(Request(sampling or Sampling(), messages=messages)))

    def complete(self, prompt: str, sampling: Sampling | None = None) -> Completion:
        return collect(self.stream(Request(sampling or Sampling(), prompt=prompt)))

    def health(self) -> dict | None:
        """What /health says about this backend's engine (which one, its process, its self-test), if anything."""
        return None

    def close(self) -> None:
        """Release threads, memory and connections."""


def collect(chunks: Iterator[Chunk]) -> Completion:
    pieces, last, calls = [], Chunk(), []
    for chunk in chunks:
        pieces.append(chunk.text)
        join_calls(calls, chunk.tool_calls)
        last = chunk
    return Completion("".join(pieces), last.finish_reason or "stop", last.prompt_tokens, last.completion_tokens, last.extra,
                      calls)


def join_calls(calls: list[dict], deltas: list[dict] | None) -> None:
    """Fold tool-call deltas into whole calls [{id, name, arguments}] (in place)."""
    for d in deltas or []:
        while d["index"] >= len(calls):
            calls.append({"id": None, "name": "", "arguments": ""})
        call = calls[d["index"]]
        if "id" in d:
            call["id"], call["name"] = d["id"], d.get("name", "")
        call["arguments"] += d.get("arguments", "")


def check_messages(messages: list[dict], parts: bool = False) -> None:
    """Roles and contents; a tool result must answer a call an earlier assistant turn made. `parts`:
    content may also be a list of OpenAI content parts (a remote vision model's image parts)."""
    if not messages:
        raise InputError("messages is empty", "send at least one message, e.g. {'role': 'user', 'content': 'hi'}")
    call_ids: set[str] = set()
    for i, m in enumerate(messages):
        if m.get("role") not in ("system", "user", "assistant", "developer", "tool"):
            raise InputError(f"messages[{i}].role {m.get('role')!r} is not one of system, user, assistant, tool", "fix the role",
                             param=f"messages[{i}].role")
        content = m.get("content")
        as_parts = parts and isinstance(content, list) and all(isinstance(p, dict) and p.get("type") in ("text", "image_url")
                                                              for p in content)
        if not isinstance(content, str) and not as_parts and not (m.get("role") == "assistant" and m.get("tool_calls")):
            raise InputError(f"messages[{i}].content must be text", "send the content as a string",
                             param=f"messages[{i}].content")
        call_ids.update(c.get("id") for c in m.get("tool_calls") or [] if c.get("id"))
        if m.get("role") == "tool" and m.get("tool_call_id") not in call_ids:
            raise InputError(f"messages[{i}].tool_call_id {m.get('tool_call_id')!r} matches no earlier assistant tool call",
                             "send the id of the call this message answers (message.tool_calls[].id)",
                             param=f"messages[{i}].tool_call_id")
