"""The one grammar engine: output held to a JSON Schema (or to "some JSON object") token by token.

Built on llguidance (MIT, a Rust core with no Python dependencies): it compiles a JSON Schema into a
grammar once (~0.2-2 ms for the schemas in the tests) and, at every decode step, computes the set of
tokens that keep the output a valid prefix, as a bitmask over the vocabulary (~0.1-1.5 ms at 152k
tokens on this CPU). Both engines run it in the same place, model.decode.SequenceState.choose: the
logits of disallowed tokens become -inf before sampling, so temperature, top-k/p and seeds work as
usual inside the allowed set. Why llguidance over xgrammar (pulls torch, triton and transformers
pins) and outlines-core (slower index compilation for large vocabularies): docs/serving.md.

A schema keyword llguidance cannot enforce (e.g. "if"/"then") makes compilation fail; that is an
InputError (HTTP 400) naming the keywords, never a silently weaker constraint.
"""

from __future__ import annotations

import json

from loom.errors import InputError

JSON_OBJECT_SCHEMA = {"type": "object"}  # response_format json_object: any JSON object
# One layout, as json.dumps writes it: no free whitespace between tokens. With whitespace allowed, a
# weak model can spend its whole budget on newlines and tabs between a key and its colon (seen with
# an untrained model: 60 tokens, never past the first key); a schema's "x-guidance" may override it.
_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def _lib():
    try:
        import llguidance
        import llguidance.hf
        import llguidance.torch
    except ImportError as e:
        raise InputError("structured output needs llguidance", "pip install llguidance==1.9.1") from e
    return llguidance


def ll_tokenizer(tokenizer):
    """llguidance's view of a Hugging Face tokenizer, built once per tokenizer object (~1 s at 152k)."""
    cached = getattr(tokenizer, "_loom_llguidance", None)
    if cached is None:
        cached = _lib().hf.from_tokenizer(tokenizer)
        tokenizer._loom_llguidance = cached
    return cached


SAFE_INTEGER = 2**53 - 1  # I-JSON (RFC 7493): integers beyond this do not survive a JavaScript or double round trip


def bounded(schema):
    """The schema with every integer held to +-(2^53 - 1) where it sets no bound of its own. Unbounded,
    an integer is a digit loop a small model can fall into: asked for {"title", "priority": int},
    qwen2.5-0.5b wrote "priority": 1000000000... until max_tokens ran out. A copy; the caller's
    schema is not changed."""
    if isinstance(schema, list):
        return [bounded(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: bounded(value) for key, value in schema.items()}
    types = out.get("type")
    if types == "integer" or (isinstance(types, list) and "integer" in types):
        if "maximum" not in out and "exclusiveMaximum" not in out:
            out["maximum"] = SAFE_INTEGER
        if "minimum" not in out and "exclusiveMinimum" not in out:
            out["minimum"] = -SAFE_INTEGER
    return out


def schema_grammar(schema: dict, tokenizer=None, where: str = "response_format.json_schema.schema") -> str:
    """A compiled grammar for a JSON Schema; an InputError naming the problem when it cannot be enforced."""
    llguidance = _lib()
    if not isinstance(schema, dict):
        raise InputError(f"{where} must be a JSON Schema object", "send e.g. {\"type\": \"object\", \"properties\": {...}}",
                         param=where)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(bounded(schema)), defaults=_LAYOUT)
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
        grammar, ll_tokenizer(tokenizer) if tokenizer is not None else None)
    if is_error:
        raise InputError(f"{where} cannot be enforced: {messages[0]}",
                         "remove or rewrite those keywords; docs/serving.md lists the supported subset", param=where)
    return grammar


class Constraint:
    """One sequence's position in a grammar: which tokens may come next, and whether it is complete."""

    def __init__(self, tokenizer, grammar: str) -> None:
        llguidance = _lib()
        self._tok = ll_tokenizer(tokenizer)
        self._matcher = llguidance.LLMatcher(self._tok, grammar, log_level=0)
        self._mask = llguidance.torch.allocate_token_bitmask(1, self._tok.vocab_size)
        self._fill = llguidance.torch.fill_next_token_bitmask
        if self._matcher.is_error():
            raise InputError(f"the output grammar is invalid: {self._matcher.get_error()}", "check the schema")

    def allowed(self, logits):
        """Logits [V] with every token the grammar forbids at this step set to -inf (a new tensor)."""
        import torch

        self._fill(self._matcher, self._mask, 0)
        if self._matcher.is_error():
            raise RuntimeError(f"structured output failed: {self._matcher.get_error()}")
        n = self._tok.vocab_size
        # 32 tokens per int32 word, lowest bit first -> [n] booleans. (llguidance.torch's own
        # apply_token_bitmask_inplace is a torch.compile kernel: 40-70 s of cold compile on this CPU.)
        bits = (self._mask[0].unsqueeze(1) >> torch.arange(32, dtype=torch.int32)) & 1
        ok = bits.flatten()[:n].bool()
        out = torch.full_like(logits, float("-inf"))
        m = min(n, logits.numel())  # a model's logits may be wider than its tokenizer: the extra ids stay -inf
        out[:m] = torch.where(ok[:m], logits[:m], out[:m])
        return out

    def accept(self, tid: int) -> None:
        if not self._matcher.consume_token(tid):
            raise RuntimeError(f"structured output failed: {self._matcher.get_error()}")

    def consume(self, token_ids: list[int]) -> bool:
        """Feed tokens the model already wrote (a call begun before its grammar was known); False when
        they do not fit, and then this constraint is spent."""
        return all(self._matcher.consume_token(t) for t in token_ids)

    @property
    def done(self) -> bool:
        """The output is complete: the grammar takes no more tokens."""
        return self._matcher.is_stopped()
