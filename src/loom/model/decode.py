"""One generation's decoding state: pick the next token, turn tokens into safe text pieces.

The one decode path: the batched engine (loom.backends.engine) runs it for the server, `loom chat` and
`loom generate` alike. Text is
decoded incrementally; a piece is held back while it ends in an incomplete UTF-8 sequence (byte
tokens decode to U+FFFD until the character is complete) or could be the start of a stop string,
so stop strings never leak into the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from loom.config import GenerateConfig

_NUCLEUS_CANDIDATES = (256, 4096)  # top-k sizes top-p tries (0.5 ms, 1.4 ms at 152k) before a full sort (15 ms)


def apply_sampling(logits: torch.Tensor, context: list[int], cfg: GenerateConfig) -> torch.Tensor:
    """Next-token logits [V] -> probabilities [V] (one-hot when greedy)."""
    logits = logits.detach().float().cpu().clone()  # sampling runs on CPU whatever the model's device (seeded CPU RNG)
    if cfg.repetition_penalty != 1.0 and context:
        idx = torch.tensor(sorted(set(context)), dtype=torch.long)
        seen = logits[idx]
        # CTRL penalty: push seen tokens' logits toward -inf whatever their sign.
        logits[idx] = torch.where(seen > 0, seen / cfg.repetition_penalty, seen * cfg.repetition_penalty)
    if cfg.temperature == 0:
        probs = torch.zeros_like(logits)
        probs[_argmax(logits)] = 1.0
        return probs
    logits = logits / cfg.temperature
    if cfg.top_k and cfg.top_k < logits.numel():
        kth = torch.topk(logits, cfg.top_k).values[-1]
        logits[logits < kth] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    if cfg.top_p < 1.0:
        probs = _nucleus(probs, cfg.top_p)
    return probs


def _argmax(values: torch.Tensor) -> int:
    """Index of the largest value of a CPU vector: numpy's scan takes 0.02 ms on a 152k vocabulary,
    torch.argmax 0.35 ms (1% of a 0.5B model's decode step, twice per greedy token)."""
    return int(values.numpy().argmax())


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the most likely tokens until their mass reaches top_p (the first always stays), renormalised.

    Sorting a 152k vocabulary costs ~15 ms on a laptop core, more than a decode step of a 0.5B model,
    so the candidates come from a top-k first (256 tokens, then 4096): when the best k already hold
    top_p of the mass, every token outside them has at least that much mass ahead of it and is dropped anyway,
    so the result is exact. Only a flat distribution falls back to the full sort.
    """
    for k in _NUCLEUS_CANDIDATES:
        top, order = torch.topk(probs, min(k, probs.numel()))  # descending
        if k >= probs.numel() or float(top.sum()) >= top_p:
            break
    else:
        top, order = torch.sort(probs, descending=True)
    keep = (torch.cumsum(top, 0) - top) < top_p  # mass strictly before each token
    out = torch.zeros_like(probs)
    out[order[keep]] = top[keep]
    return out / out.sum()


@dataclass
class TokenLogprob:
    """One generated token's log-probability under the model (log-softmax of its raw logits: before
    temperature, top-k/p and penalties) and the `top` most likely alternatives at that step.
    `token` is the text the token added to the output, so the tokens of a completion join to its text
    (a token that ends inside a multi-byte character adds "" and the one completing it adds the whole
    character); `bytes` is that text in UTF-8."""

    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]] = field(default_factory=list)
    start: int = 0  # offset of `token` in the completion text


def _alternatives(logits: torch.Tensor, k: int, lse: torch.Tensor, tokenizer) -> list[tuple[str, float, list[int]]]:
    values, ids = torch.topk(logits, k)
    out = []
    for value, tid in zip((values - lse).tolist(), ids.tolist()):
        text = tokenizer.decode([tid], skip_special_tokens=False)
        out.append((text, value, list(text.encode("utf-8"))))
    return out


class SequenceState:
    def __init__(self, tokenizer, prompt_ids: list[int], cfg: GenerateConfig, stop_ids: set[int],
                 context_limit: int, constraint=None, logprobs: int | None = None, calls=None) -> None:
        self.tokenizer = tokenizer
        self.prompt_ids = prompt_ids
        self.cfg = cfg
        self.stop_ids = stop_ids
        self.context_limit = context_limit
        self.constraint = constraint  # model.constrain.Constraint: the grammar the output must follow, if any
        self.calls = calls  # model.toolcalls.CallTracker when the request declares tools
        self._call_deltas: list[dict] = []  # tool-call deltas not yet taken by the engine
        self.rng = torch.Generator().manual_seed(cfg.seed) if cfg.seed is not None else None
        self.stops = [] if constraint is not None else cfg.stop  # a stop string could cut the structured output short
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.completion_ids: list[int] = []
        self.emitted = 0
        self.finish_reason: str | None = None
        self.logprobs = logprobs  # None: off; k: each token's logprob and its k best alternatives (0-20)
        self._scored: tuple[int, float, list] | None = None  # the last chosen token's (id, logprob, alternatives)
        self._logged: list[TokenLogprob] = []  # tokens whose text is not yet in an emitted chunk
        self._assigned = 0  # characters of the completion text given to logged tokens so far
        self.shown = 0  # characters returned by push so far (the text a client has seen)

    @classmethod
    def from_sampling(cls, tokenizer, prompt_ids, sampling, stop_ids, context_limit, tools=None):
        """From a request's loom.backends.base.Sampling (read by attribute: the model layer sits below
        backends). json_schema or json_object hold the output to a grammar (model.constrain); tools
        (a model.tools.ToolSet) are watched for calls (model.toolcalls)."""
        cfg = GenerateConfig(max_new_tokens=sampling.max_tokens, temperature=sampling.temperature, top_k=sampling.top_k,
                             top_p=sampling.top_p, repetition_penalty=sampling.repetition_penalty,
                             stop=sampling.stop, seed=sampling.seed)
        from loom.model.constrain import JSON_OBJECT_SCHEMA, Constraint, schema_grammar

        constraint, calls = None, None
        schema = getattr(sampling, "json_schema", None)
        if schema is not None or sampling.json_object:
            constraint = Constraint(tokenizer, schema_grammar(schema if schema is not None else JSON_OBJECT_SCHEMA, tokenizer))
        if tools is not None and tools.active:
            from loom.model.toolcalls import CallTracker

            calls = CallTracker(tokenizer, tools)
            if (grammar := calls.first_grammar()) is not None:  # tool_choice required / named: from the first token
                constraint = Constraint(tokenizer, grammar)
        return cls(tokenizer, prompt_ids, cfg, stop_ids, context_limit, constraint, getattr(sampling, "logprobs", None), calls)

    def choose(self, logits: torch.Tensor) -> int:
        """Next token id from last-position logits [V] (scored too when logprobs were asked for)."""
        tid = self._choose(logits)
        if self.logprobs is not None:
            # One step's log-softmax (~0.3 ms at 152k): never every position's logits, which llama.cpp's
            # logits_all would keep (n_ctx x vocab floats, ~2.5 GB for qwen2.5 at 4k).
            raw = logits.detach().float().cpu()
            lse = torch.logsumexp(raw, 0)
            top = _alternatives(raw, self.logprobs, lse, self.tokenizer) if self.logprobs else []
            self._scored = (tid, float(raw[tid] - lse), top)
        return tid

    def _choose(self, logits: torch.Tensor) -> int:
        if self.constraint is not None:  # tokens the grammar forbids get -inf: sampling picks among the rest
            logits = self.constraint.allowed(logits.detach().float().cpu())
        return self._draw(apply_sampling(logits, self.prompt_ids + self.completion_ids, self.cfg))

    def _draw(self, probs: torch.Tensor) -> int:
        if self.cfg.temperature == 0:
            return _argmax(probs)
        # Inverse CDF: one uniform draw against the running sum (float64, so 150k small terms add up
        # exactly enough). Same distribution as torch.multinomial at ~0.2 ms instead of ~4.7 ms for a
        # 152k vocabulary, which was a fifth of a qwen2.5-0.5b decode step. A zero-probability token
        # never wins: its CDF value equals its predecessor's, and the search takes the first value above u.
        cdf = torch.cumsum(probs, 0, dtype=torch.float64)
        u = torch.rand(1, generator=self.rng, dtype=torch.float64) * cdf[-1]
        return int(torch.searchsorted(cdf, u, right=True))

    def push(self, tid: int) -> str:
        """Record a chosen token; return the content text that became safe to emit (tool calls go to
        take_tool_calls). Sets finish_reason when done."""
        piece = self._push(tid)
        self.shown += len(piece)
        if self.finish_reason == "stop" and self.calls is not None and self.calls.called:
            self.finish_reason = "tool_calls"
        return piece

    def _push(self, tid: int) -> str:
        if tid in self.stop_ids:
            self.finish_reason = "stop"
            return self.flush()
        self.completion_ids.append(tid)
        if self.logprobs is not None:
            self._log(tid)
        if self.constraint is not None:
            self.constraint.accept(tid)
            if self.constraint.done:
                self.finish_reason = "stop"
                return self.flush()
        text = self._decoded if self.logprobs is not None else self.tokenizer.decode(self.completion_ids, skip_special_tokens=True)
        if self.calls is not None:
            if self._watch_calls(text):
                self.finish_reason = "stop"
                return self.flush()
            text = text[:self.calls.content_end(text)]  # what follows is (or may be) a call: never content
        cut = min((i for i in (text.find(s, max(0, self.emitted - self.hold)) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            piece = text[self.emitted:cut]
            self.emitted = len(text)
            self.finish_reason = "stop"
            if self.calls is not None:  # cut before any call: nothing after the stop string counts
                self.calls.drop()
                self._call_deltas = []
            return piece
        if len(self.completion_ids) >= self.cfg.max_new_tokens or len(self.prompt_ids) + len(self.completion_ids) >= self.context_limit:
            self.finish_reason = "length"
            return self.flush()
        safe = len(text) - self.hold
        while safe > self.emitted and text[safe - 1] == "\ufffd":
            safe -= 1
        if safe <= self.emitted:
            return ""
        piece, self.emitted = text[self.emitted:safe], safe
        return piece

    def _watch_calls(self, text: str) -> bool:
        """Hand the text to the call tracker; when a call has begun, hold the rest of it to the tools'
        grammar. True when that grammar is already complete (the call ended with this token)."""
        found = self.calls.observe(text)
        if found is not None:
            from loom.model.constrain import Constraint

            grammar, written = found
            constraint = Constraint(self.tokenizer, grammar)
            if constraint.consume(self.tokenizer.encode(written, add_special_tokens=False)):
                self.constraint, self.calls.constrained, self.stops, self.hold = constraint, True, [], 0
            # else: the model's own layout does not fit the grammar; the call is parsed at the end instead
        self._call_deltas += self.calls.deltas(text)
        return self.calls.constrained and self.constraint.done

    def take_tool_calls(self) -> list[dict] | None:
        """Tool-call deltas produced since the last take (model.toolcalls); None when there are none."""
        out, self._call_deltas = self._call_deltas, []
        return out or None

    def _log(self, tid: int) -> None:
        """Give the token the text it completed: the decoded text's growth, less a trailing incomplete
        character (U+FFFD), which the token that completes it takes."""
        text = self._decoded = self.tokenizer.decode(self.completion_ids, skip_special_tokens=True)
        end = len(text)
        while end > self._assigned and text[end - 1] == "\ufffd":
            end -= 1
        piece = text[self._assigned:end]
        scored_tid, logprob, top = self._scored  # choose() scored the token push() records
        assert scored_tid == tid, "push() records the token choose() picked"
        self._logged.append(TokenLogprob(piece, logprob, list(piece.encode("utf-8")), top, self._assigned))
        self._assigned = end

    def take_logprobs(self) -> list[TokenLogprob] | None:
        """The logged tokens whose text is now emitted (all of them once finished, the last one cut where
        the output was cut, e.g. at a stop string); None when logprobs were not asked for."""
        if self.logprobs is None:
            return None
        if self.finish_reason is None:
            n = 0
            while n < len(self._logged) and self._logged[n].start + len(self._logged[n].token) <= self.shown:
                n += 1
            out, self._logged = self._logged[:n], self._logged[n:]
            return out
        if self.shown >= self._assigned:  # nothing was cut: flushed text past the last token joins it
            out = self._logged
            if out:
                text = self.tokenizer.decode(self.completion_ids, skip_special_tokens=True)
                out[-1].token += text[self._assigned:self.shown]
        else:  # cut at a stop string: tokens past the cut go, the one across it is shortened
            out = [t for t in self._logged if t.start < self.shown]
            if out:
                out[-1].token = out[-1].token[: self.shown - out[-1].start]
        if out:
            out[-1].bytes = list(out[-1].token.encode("utf-8"))
        self._logged = []
        return out

    def flush(self) -> str:
        """All text not yet emitted. Structured output cut by the token budget stays cut (finish_reason
        "length"), as OpenAI's does: closing it by hand could break the schema."""
        text = self.tokenizer.decode(self.completion_ids, skip_special_tokens=True)
        end = len(text)
        if self.calls is not None:  # content stops where the calls begin; the calls become deltas
            end, deltas = self.calls.finish(text)
            self._call_deltas += deltas
        piece, self.emitted = text[self.emitted:end], max(self.emitted, end)
        return piece


def encode_prompt(tokenizer, prompt: str, chat: bool, system: str | None = None) -> list[int]:
    if chat and tokenizer.chat_template:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer.encode(text, add_special_tokens=False)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    if not ids and tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id]  # unconditional sample from a base model
    return ids
