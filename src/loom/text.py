"""Script detection, sentence splitting and length units: the one place Loom decides what is Chinese
and where a sentence ends, so every stage (cleaning, search, classifiers, apps, metrics) agrees.

CJK here means the Unified Ideographs (U+4E00-9FFF), Extension A (U+3400-4DBF) and the
Compatibility Ideographs (U+F900-FAFF): Chinese characters, including those Japanese and Korean
share. Kana and Hangul are not counted as Chinese (data.clean's script counts handle them).
"""

from __future__ import annotations

import re

CJK = "\u3400-\u9fff\uf900-\ufaff"  # a regex character-class body
CJK_CHAR = re.compile(f"[{CJK}]")
CJK_RUN = re.compile(f"[{CJK}]+")
_UNIT = re.compile(f"[{CJK}]|[^\\W_{CJK}]+")  # a Han character alone; a letter/digit run stops at one
# A sentence ends after 。！？；… (plus closing quotes/brackets), or after . ! ? ; (plus closers)
# followed by whitespace, so "2.4 GHz" and "e.g." inside a word do not split.
_SENTENCE_END = re.compile(r"(?<=[。！？；…])[”’」』）)]*|(?<=[.!?;])[\"')\]]*(?=\s)")
CHINESE_SHARE = 0.3  # is_chinese: at least this share of the non-space characters are CJK


def has_cjk(text: str) -> bool:
    return CJK_CHAR.search(text) is not None


def cjk_count(text: str) -> int:
    return len(CJK_CHAR.findall(text))


_WIDE = re.compile(f"[{CJK}\u3000-\u303f\uff00-\uffef]")  # Han, CJK punctuation, full-width forms


def glue(left: str, right: str) -> str:
    """Join two pieces of running text (OCR lines, words): no space where both sides of the seam
    are Chinese characters or full-width punctuation ("退货" + "政策"), one space elsewhere."""
    if not left or not right:
        return left or right
    wide = _WIDE.match(left[-1]) and _WIDE.match(right[0])
    return left + right if wide else f"{left} {right}"


def is_chinese(text: str) -> bool:
    """Mostly Chinese: CJK characters are at least 30% of the non-space characters (mixed text such
    as "Wi-Fi 连不上" counts; an English sentence quoting one character does not)."""
    cjk = cjk_count(text)
    return cjk > 0 and cjk >= CHINESE_SHARE * max(1, len(re.sub(r"\s", "", text)))


def language(text: str) -> str:
    """'zh' when the text has any Chinese character, else 'en': for short questions, where one
    character already says which language the asker reads."""
    return "zh" if has_cjk(text) else "en"


_DASHES = re.compile(r"[\u2010-\u2015\u2212~～]")


def fold(text: str) -> str:
    """For comparing phrases: NFKC (full-width to half-width), lowercase, dashes as '-', no whitespace,
    so "3–5 个工作日" and "3-5个工作日" compare equal; nothing looser."""
    import unicodedata

    return re.sub(r"\s+", "", _DASHES.sub("-", unicodedata.normalize("NFKC", text).lower()))


def units(text: str) -> list[str]:
    """Length and overlap units: each CJK character alone, other letter/digit runs lowercased."""
    return _UNIT.findall(text.lower())


def sentences(text: str) -> list[str]:
    """Sentences, stripped, in order; Chinese and Western punctuation both end one."""
    parts, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        if end > start:
            parts.append(text[start:end].strip())
            start = end
    parts.append(text[start:].strip())
    return [p for p in parts if p]
