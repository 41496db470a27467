"""Word segmentation shared by classifiers and search: jieba for Chinese, \\w+ runs otherwise."""

from __future__ import annotations

import functools
import logging
import re

from loom.text import CJK, CJK_RUN as _CJK_RUN

_TOKEN = re.compile(f"[{CJK}]+|[^\\W_{CJK}]+")


def jieba_cut(text: str) -> list[str]:
    """jieba word segmentation; the import and its log setting happen once, not per call."""
    return _jieba().lcut(text)


@functools.lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def search_terms(text: str) -> list[str]:
    """Lowercased words for BM25: jieba words inside Chinese runs, letter/digit runs elsewhere;
    punctuation dropped."""
    terms = []
    for run in _TOKEN.findall(text.lower()):
        if _CJK_RUN.fullmatch(run):
            terms += [w for w in jieba_cut(run) if w.strip()]
        else:
            terms.append(run)
    return terms
