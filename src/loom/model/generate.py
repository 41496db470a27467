"""Token-by-token generation with a KV cache for one prompt, streaming text as it is produced
(`loom generate`; the server batches many prompts in loom.backends.engine instead).

Sampling order per step: repetition penalty -> temperature -> top-k -> top-p -> draw. Turning
tokens into safe text pieces (stop strings, split UTF-8 characters) is loom.model.decode's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from loom.config import GenerateConfig
from loom.errors import InputError
from loom.model.decode import SequenceState


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
        state = SequenceState(self.tokenizer, self.prompt_ids, self.cfg, self.stop_ids, context_limit)
        self.completion_ids = state.completion_ids
        cache, step_input = None, torch.tensor([self.prompt_ids])
        with torch.inference_mode():
            while state.finish_reason is None:
                # logits_to_keep=1: the prompt pass needs only the last position's logits.
                out = self.model(input_ids=step_input, cache=cache, use_cache=True, logits_to_keep=1)
                cache = out.cache
                next_id = state.choose(out.logits[0, -1])
                piece = state.push(next_id)
                if piece:
                    yield piece
                step_input = torch.tensor([[next_id]])
        self.finish_reason = state.finish_reason


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
