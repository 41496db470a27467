"""A chat model reads the chosen passage before Loom answers from it: does it answer the question?

Similarity cannot tell a question the KB answers from one on the KB's own subject that it does not:
"你们卖儿童座椅吗？能装在F2上吗" sits at 0.93 on the e-bike manual under e5, above most in-scope
paraphrases. A reader can: asked "does the passage contain the answer?", qwen2.5-1.5b separates the
benchmark's right in-scope answers from its out-of-scope questions with AUC 0.97-1.00 per domain
(bench/support_answers.py, docs/support.md), at ~2.5 s a question on 2 cores (two prompts of ~150
tokens, one token out each).

The reader's verdict is the log-odds of "yes" against "no" at the first token, read from the
model's logprobs, and joins the answerability evidence with a weight chosen by cross-validation
(answerable.READER_RULE). Backends that return no logprobs (some remote engines) give their
one-word reply, counted as 0.9 or 0.1.

    reader = Reader(backend)
    reader.log_odds("The battery charges in 4-6 hours.", "how long to charge it?")   # ~ +3.4
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

# The models whose verdicts the shipped weights were measured with: `reader: auto` uses one of these
# when it is the KB's writer or the default chat model. Any other chat model is used only when named
# (`--reader NAME`): a 135M English model's yes/no is noise, and noise with this weight hands off
# answerable questions.
AUTO_READERS = ("qwen2.5-1.5b",)
MAX_LOG_ODDS = 6.9  # log(999): p clipped to [0.001, 0.999], so one confident token cannot outvote the rest
TEXT_ONLY = 0.9  # the probability a bare "yes" stands for when the backend gives no logprobs
PASSAGE_CHARS = 2000  # a longer passage is cut: bounds the prompt (~600 tokens) and the latency
_CACHE = 512  # (passage, question) verdicts kept: evaluation and repeated questions ask again

# Two wordings, their log-odds averaged: each alone misses the goal on one of the benchmark's three
# domains (held out), together they meet it on all three (docs/support.md). One prompt serves both
# languages: asked in Chinese with worked examples, qwen2.5-1.5b separated worse (AUC 0.91-0.99 against
# 0.95-1.00) and took twice as long.
PROMPTS = (
    ("You check a customer-service knowledge base. Say whether the passage contains the answer to the customer's question.",
     "Passage:\n{passage}\n\nCustomer's question: {question}\n\nDoes the passage contain the answer to this question? "
     "Reply with yes or no."),
    ("You check a customer-service knowledge base. Say whether the passage states the answer to the customer's question. "
     "If the question asks about a product, service, price or feature the passage does not mention, say no.",
     "Passage:\n{passage}\n\nCustomer's question: {question}\n\nIs the answer to this question stated in the passage? "
     "Reply with yes or no."),
)
_YES, _NO = ("yes", "是"), ("no", "否")


class Reader:
    """`backend`: a loaded chat Backend (the server's shared copy or one of its own); not closed here.
    `cache`: verdicts kept (a benchmark that scores many rules by answering again keeps them all)."""

    def __init__(self, backend, name: str | None = None, cache: int = _CACHE) -> None:
        self.backend = backend
        self.name = name or getattr(backend, "name", "reader")
        self.cache = cache
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()  # a server answers several customers at once; the model call runs unlocked

    def log_odds(self, passage: str, question: str) -> float:
        """log P(yes) - log P(no) that `passage` answers `question`, in [-MAX_LOG_ODDS, MAX_LOG_ODDS]."""
        key = (passage, question)
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return self._seen[key]
        value = self._ask(passage[:PASSAGE_CHARS], question)
        with self._lock:
            self._seen[key] = value
            if len(self._seen) > self.cache:
                self._seen.popitem(last=False)
        return value

    def _ask(self, passage: str, question: str) -> float:
        return sum(self._ask_once(system, ask, passage, question) for system, ask in PROMPTS) / len(PROMPTS)

    def _ask_once(self, system: str, ask: str, passage: str, question: str) -> float:
        from loom.backends.base import Request, Sampling

        messages = [{"role": "system", "content": system}, {"role": "user", "content": ask.format(passage=passage, question=question)}]
        chunks = list(self.backend.stream(Request(Sampling(max_tokens=1, temperature=0, logprobs=10), messages=messages)))
        first = next((t for c in chunks for t in (c.logprobs or [])), None)
        if first is not None:
            yes = sum(math.exp(lp) for token, lp, _ in first.top if token.strip().lower() in _YES)
            no = sum(math.exp(lp) for token, lp, _ in first.top if token.strip().lower() in _NO)
            if yes + no > 0:
                return _clipped_log_odds(yes / (yes + no))
        reply = "".join(c.text for c in chunks).strip().lower()
        return _clipped_log_odds(TEXT_ONLY if reply.startswith(_YES) else 1 - TEXT_ONLY)


def probability(log_odds: float) -> float:
    return 1 / (1 + math.exp(-log_odds))


def _clipped_log_odds(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return MAX_LOG_ODDS if p >= 1.0 else -MAX_LOG_ODDS
    return max(-MAX_LOG_ODDS, min(MAX_LOG_ODDS, math.log(p / (1 - p))))


def check_choice(choice: str) -> str:
    """A `--reader` value from the command line: auto, off or a model name, never a path."""
    from loom import home
    from loom.errors import InputError

    if choice not in ("auto", "off") and not home.is_model_name(choice):
        raise InputError(f"--reader {choice!r} is not a model name", "pass auto, off, or a name from `loom models list`")
    return choice


def auto_name(choice: str | None, writer: str | None) -> str | None:
    """The reader a support config asks for: None/"off" none, a model name that model, "auto" the KB's
    writer or the default chat model when it is one of AUTO_READERS and installed."""
    from loom import catalog
    from loom.errors import LoomError

    if choice in (None, "off"):
        return None
    if choice != "auto":
        return choice
    for name in (writer, catalog.default_chat_model()):
        if name in AUTO_READERS:
            try:
                catalog.resolve(name, allow_paths=False)
            except LoomError:  # named as default but not pulled on this machine
                continue
            return name
    return None


def open_reader(choice: str | None, writer: str | None = None, writer_backend=None, shared=None,
                warn=None) -> tuple[Reader | None, object | None]:
    """(the Reader, the backend the caller must close or None). The writer's loaded backend is reused
    when the reader is the same model; a server's (registry.Shared) loaded copy is borrowed. An
    automatic choice that fails to load is skipped with a warning; a named one raises."""
    from loom import registry
    from loom.errors import LoomError

    name = auto_name(choice, writer)
    if name is None:
        return None, None
    if name == writer and writer_backend is not None:
        return Reader(writer_backend, name), None
    try:
        backend = shared.open(name) if shared else registry.open_backend(name)
    except LoomError as e:
        if choice != "auto":
            raise
        if warn:
            warn(f"answering without a reader: {name} did not load ({e})")
        return None, None
    return Reader(backend, name), None if shared else backend
