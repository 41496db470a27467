"""Named Llama shapes, measured with tied embeddings (`loom pretrain` prints the real count for
the tokenizer it uses):

    name    layers  d_model  heads  d_ff   params @ 8k vocab   @ 32k vocab
    nano       2      64       2     172        0.61M             2.15M
    micro      4     128       4     344        1.82M             4.89M
    tiny       6     256       8     688        6.79M            12.94M
    small      6     384       6    1024       13.69M            22.91M
    medium     8     512       8    1376       29.40M            41.69M
    base      12     768      12    2048       91.10M           109.53M
"""

from __future__ import annotations

from loom.errors import ConfigError

PRESETS: dict[str, dict[str, int]] = {
    "nano": {"n_layer": 2, "d_model": 64, "n_head": 2, "d_ff": 172},
    "micro": {"n_layer": 4, "d_model": 128, "n_head": 4, "d_ff": 344},
    "tiny": {"n_layer": 6, "d_model": 256, "n_head": 8, "d_ff": 688},
    "small": {"n_layer": 6, "d_model": 384, "n_head": 6, "d_ff": 1024},
    "medium": {"n_layer": 8, "d_model": 512, "n_head": 8, "d_ff": 1376},
    "base": {"n_layer": 12, "d_model": 768, "n_head": 12, "d_ff": 2048},
}


def preset(name: str) -> dict[str, int]:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}", f"use one of: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
