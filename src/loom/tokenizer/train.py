"""`loom tokenizer train`: learn a tokenizer from a prepared dataset; save a Hugging Face folder.

Both kinds round-trip every Unicode string exactly (decode(encode(s)) == s):
- bpe: byte-level BPE (GPT-2 style). Text is mapped to bytes before merges, so nothing is ever
  unknown; no normaliser is attached (normalisation happens in `loom data prepare`, once).
- char: one token per character seen in the corpus; unseen characters fall back to their UTF-8
  bytes as <0xNN> tokens, which the decoder fuses back into characters.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tqdm import tqdm

from loom import atomic, home
from loom.config import TokenizerConfig
from loom.data.prepare import documents_path, iter_documents
from loom.errors import ExistsError, InputError
from loom.tokenizer.chat import CHATML as CHAT_TEMPLATE, IM_END, IM_START

EOS = "<|endoftext|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = [EOS, PAD, IM_START, IM_END]


def _count_docs(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def train_tokenizer(data: str, name: str, cfg: TokenizerConfig, overwrite: bool = False, progress: bool = True) -> dict:
    """Train on dataset `data`, save tokenizer `name`; returns a summary."""
    out_dir = home.tokenizer_dir(name)
    if out_dir.exists() and not overwrite:
        raise ExistsError(f"tokenizer {name!r} already exists at {out_dir}", "choose another --name or pass --overwrite")
    docs_file = documents_path(data)
    n_docs = _count_docs(docs_file)
    docs = tqdm(iter_documents(docs_file), total=n_docs, desc=f"tokenizer {name}", unit=" docs", disable=not progress)
    backend = _train_bpe(docs, cfg) if cfg.kind == "bpe" else _train_char(docs, cfg)
    hf_tok = wrap(backend)
    with atomic.folder_writer(out_dir, replace=overwrite) as tmp:
        hf_tok.save_pretrained(tmp)
        summary = {"name": name, "kind": cfg.kind, "vocab_size": len(hf_tok), "dataset": data, "documents": n_docs}
        atomic.write_json(tmp / "loom_tokenizer.json", summary | {"config": cfg.model_dump()})
    return summary | {"path": str(out_dir)}


def _train_bpe(docs, cfg: TokenizerConfig):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer)
    return tok


def _train_char(docs, cfg: TokenizerConfig):
    from tokenizers import Tokenizer, decoders, models

    counts: Counter[str] = Counter()
    for text in docs:
        counts.update(text)
    if not counts:
        raise InputError("the dataset has no characters to learn", "prepare a dataset with some text first")
    chars = [c for c, _ in (counts.most_common(cfg.max_chars) if cfg.max_chars else counts.most_common())]
    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS + [f"<0x{b:02X}>" for b in range(256)] + sorted(chars):
        vocab.setdefault(token, len(vocab))
    # A BPE model with no merges is a character lookup; byte_fallback covers unseen characters.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True, ignore_merges=True))
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return tok


def wrap(backend):
    """A transformers fast tokenizer around a `tokenizers.Tokenizer`, with Loom's specials and chat template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
