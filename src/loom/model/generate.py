"""Token-by-token generation with a KV cache, streaming text as it is produced.

Sampling order per step: repetition penalty -> temperature -> top-k -> top-p -> draw. Text is
decoded incrementally; a piece is held back while it ends in an incomplete UTF-8 sequence (byte
tokens decode to U+FFFD until the character is complete) or could be the start of a stop string,
so stop strings never leak into the output.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from loom.config import GenerateConfig
from loom.errors import InputError


def apply_sampling(logits: torch.Tensor, context: list[int], cfg: GenerateConfig) -> torch.Tensor:
    """Next-token logits [V] -> probabilities [V] (one-hot when greedy)."""
    logits = logits.float().clone()
    if cfg.repetition_penalty != 1.0 and context:
        idx = torch.tensor(sorted(set(context)), dtype=torch.long)
        seen = logits[idx]
        # CTRL penalty: push seen tokens' logits toward -inf whatever their sign.
        logits[idx] = torch.where(seen > 0, seen / cfg.repetition_penalty, seen * cfg.repetition_penalty)
    if cfg.temperature == 0:
        probs = torch.zeros_like(logits)
        probs[int(torch.argmax(logits))] = 1.0
        return probs
    logits = logits / cfg.temperature
    if cfg.top_k and cfg.top_k < logits.numel():
        kth = torch.topk(logits, cfg.top_k).values[-1]
        logits[logits < kth] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    if cfg.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Drop tokens whose preceding mass already reaches top_p; the first token always stays.
        drop = (torch.cumsum(sorted_probs, 0) - sorted_probs) >= cfg.top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        probs = probs / probs.sum()
    return probs


@dataclass
class Generation:
    """Iterate for text pieces; afterwards finish_reason ('stop' or 'length') and token counts are set."""

    model: object
    tokenizer: object
    prompt_ids: list[int]
    cfg: GenerateConfig
    stop_ids: set[int] = field(default_factory=set)
    finish_reason: str | None = None
    completion_ids: list[int] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.completion_ids)

    def __iter__(self) -> Iterator[str]:
        context_limit = getattr(self.model.config, "max_position_embeddings", None) or 1 << 30
        if len(self.prompt_ids) >= context_limit:
            raise InputError(
                f"prompt is {len(self.prompt_ids)} tokens; the model's context is {context_limit}",
                "shorten the prompt",
            )
        if not self.prompt_ids:
            raise InputError("empty prompt and the tokenizer has no BOS token", "pass a non-empty --prompt")
        gen = torch.Generator().manual_seed(self.cfg.seed) if self.cfg.seed is not None else None
        stops, hold = self.cfg.stop, max((len(s) for s in self.cfg.stop), default=1) - 1
        emitted, cache = 0, None
        step_input = torch.tensor([self.prompt_ids])
        self.finish_reason = "length"
        with torch.inference_mode():
            for _ in range(self.cfg.max_new_tokens):
                if len(self.prompt_ids) + len(self.completion_ids) >= context_limit:
                    break
                # logits_to_keep=1: the prompt pass needs only the last position's logits.
                out = self.model(input_ids=step_input, cache=cache, use_cache=True, logits_to_keep=1)
                cache = out.cache
                probs = apply_sampling(out.logits[0, -1], self.prompt_ids + self.completion_ids, self.cfg)
                next_id = int(torch.multinomial(probs, 1, generator=gen)) if self.cfg.temperature > 0 else int(torch.argmax(probs))
                if next_id in self.stop_ids:
                    self.finish_reason = "stop"
                    break
                self.completion_ids.append(next_id)
                step_input = torch.tensor([[next_id]])
                text = self.tokenizer.decode(self.completion_ids, skip_special_tokens=True)
                cut = min((i for i in (text.find(s, max(0, emitted - hold)) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    if cut > emitted:
                        yield text[emitted:cut]
                    self.finish_reason = "stop"
                    return
                safe = len(text) - hold
                while safe > emitted and text[safe - 1] == "\ufffd":
                    safe -= 1
                if safe > emitted:
                    yield text[emitted:safe]
                    emitted = safe
        text = self.tokenizer.decode(self.completion_ids, skip_special_tokens=True)
        if len(text) > emitted:
            yield text[emitted:]


def stop_token_ids(tokenizer) -> set[int]:
    """EOS plus chat end-of-turn tokens the tokenizer knows."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for token in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return ids


def encode_prompt(tokenizer, prompt: str, chat: bool, system: str | None = None) -> list[int]:
    if chat and tokenizer.chat_template:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer.encode(text, add_special_tokens=False)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    if not ids and tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id]  # unconditional sample from a base model
    return ids


def generate(model, tokenizer, prompt: str, cfg: GenerateConfig, chat: bool = False, system: str | None = None) -> Generation:
    return Generation(model, tokenizer, encode_prompt(tokenizer, prompt, chat, system), cfg, stop_token_ids(tokenizer))
