"""A knowledge base as a chat model: `model: "support:NAME"` through the OpenAI API or any code
that speaks the backend contract. The last user message is the question, earlier turns are the
history; citations travel on the final chunk (`extra`), hand-offs are flagged in the KB."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from loom import registry
from loom.apps.support.reader import open_reader
from loom.backends.base import Backend, Chunk, Info, Request, check_messages
from loom.config import SupportConfig
from loom.errors import InputError

PREFIX = "support:"
log = logging.getLogger(__name__)


class SupportBackend(Backend):
    def __init__(self, kb_name: str, shared: registry.Shared | None = None, cfg: SupportConfig | None = None) -> None:
        """shared: a server's loaded models and its `apps.support` model (see registry.Shared)."""
        from loom.apps.support.store import KnowledgeBase

        self.kb = KnowledgeBase(kb_name)
        self.name = PREFIX + kb_name
        self.cfg = cfg or SupportConfig()
        self.generator, self._owns_generator = None, shared is None
        # the writer: this config's, else the KB's own (`loom kb create NAME --model M`), else the server's for support
        model = self.cfg.model or self.kb.meta("model") or (shared.app_models.get("support") if shared else None)
        if model:
            self.cfg = self.cfg.model_copy(update={"model": model})
            self.generator = shared.open(model) if shared else registry.open_backend(model)
        # the reader that checks a passage answers before Loom answers from it (reader.py; the server's copy when shared)
        choice = shared.app_models.get("support_reader") or self.cfg.reader if shared else self.cfg.reader
        self.reader, self._reader_backend = open_reader(choice, model, self.generator, shared, log.warning)

    def info(self) -> Info:
        how = f"answers written by {self.cfg.model}" if self.cfg.model else "extractive answers"
        how += f", passages checked by {self.reader.name}" if self.reader else ""
        return Info(self.name, "support", ["chat"], None, f"customer support over knowledge base {self.kb.name!r} ({how})")

    def stream(self, request: Request) -> Iterator[Chunk]:
        from loom.apps.support.answer import SupportTurn

        if request.messages is None:
            raise InputError(f"{self.name} answers chat messages", "use /v1/chat/completions")
        check_messages(request.messages)
        if request.messages[-1]["role"] != "user":
            raise InputError("the last message must be the customer's (role 'user')", "end messages with the question")
        history = [m for m in request.messages[:-1] if m["role"] in ("user", "assistant")]
        turn = SupportTurn(self.kb, request.messages[-1]["content"], history, self.cfg, self.generator, reader=self.reader)
        return self._run(turn)

    def _run(self, turn) -> Iterator[Chunk]:
        produced = 0
        for piece in turn:
            produced += 1
            yield Chunk(piece)
        if turn.citations:  # plain chat UIs show only the content: name the sources there too
            yield Chunk(sources_footer(turn.citations, turn.lang))
        turn.record(conversation=uuid.uuid4().hex[:16])
        extra = {"citations": turn.citations, "confidence": round(turn.confidence, 4), "handoff": turn.handoff, "mode": turn.mode,
                 "reader": turn.reader_verdict(),
                 "fallback": turn.fallback}  # why a chat model's sentence was replaced by the extractive answer ('' if not)
        yield Chunk("", "stop", self.count_tokens(turn.question), produced, extra)

    def close(self) -> None:
        if self.generator is not None and self._owns_generator:  # a server's shared model stays loaded
            self.generator.close()
        if self._reader_backend is not None:
            self._reader_backend.close()


def sources_footer(citations: list[dict], lang: str) -> str:
    from pathlib import Path

    label = "来源" if lang == "zh" else "Sources"
    lines = [f"[{c['n']}] {Path(c['source']).name}" + (f" {c['time']}" if c.get("time") else "")
             + (f" ({c['title']})" if c["title"] and c["title"] != "FAQ" else "") for c in citations]
    return f"\n\n{label}:\n" + "\n".join(lines)


registry.register_prefix(PREFIX, SupportBackend)  # `support:NAME` opens this app's backend
