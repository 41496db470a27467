"""Answering one customer turn: rewrite a follow-up with the history, retrieve, judge whether the KB
can answer at all (answerable.py: scores calibrated per KB), then

  1. a FAQ question that stands out as the customer's own question -> its answer, cited;
  2. not answerable -> a polite hand-off, flagged for a person;
  3. a chat model configured -> one short sentence written from the single best passage; Loom
     cites that passage itself. Empty, bare-number or unsupported output (too little of it found in
     the passage) falls back to the extractive answer, so a weak model never shows a wrong answer;
  4. otherwise -> extractive: the best passage only (or its sentences that match the question,
     when the passage is long), never a second unrelated hit.

    turn = SupportTurn(kb, "退货要多久？", history=[], cfg=SupportConfig())
    for piece in turn: print(piece, end="")
    turn.citations, turn.confidence, turn.handoff, turn.mode
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace

from loom.apps.support import answerable
from loom.apps.support.retrieve import Hit, hit, search_detailed
from loom.apps.support.store import KnowledgeBase
from loom.config import SupportConfig
from loom.data.clean import EN_STOPWORDS
from loom.errors import LoomError
from loom.data.words import search_terms
from loom.text import CJK_CHAR, CJK_RUN, fold, has_cjk, language, sentences

_PRONOUNS = re.compile(r"\b(it|its|that|this|those|these|they|them|there)\b|它|这个|那个|这些|那些|其|该", re.I)
_BARE = re.compile(r"^[\W\d_]*$")  # "1", "[1]", "2." : what a small model writes when the prompt confuses it
_IDK = ("i don't know", "i do not know", "no answer", "cannot answer", "不知道", "无法回答", "没有提到", "未提及")
_CODE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{1,3}-?\d{1,4}(?![A-Za-z0-9])")  # E03, F2, P-12: named exactly or not at all
log = logging.getLogger(__name__)
CANDIDATES = 8  # passages weighed when choosing the one to answer from (the top k shown are the first cfg.k)
READ_CANDIDATES = 3  # with a reader: passages it may read to choose the one to answer from
READ_MORE_BELOW = 1.0  # log-odds (p 0.73): a first passage the reader rates lower makes it read the next ones
# log-odds another candidate must beat the first by to be answered from instead. Over the benchmark's five
# domains' 228 in-scope questions (bench/data/support), right passages: 218 switching to any higher one,
# 223 with 0.5 (0.25-0.75 all within one question), 213 never switching; the test domain 29 -> 31 of 40.
READ_SWITCH_MARGIN = 0.5
CHOOSE_COVERAGE = 0.05  # cosine points a passage holding all of the question's rare words gains when choosing
CHOOSE_CODE = 0.05  # and one that holds every code the question names (an error code, a model number)
SHORT_PASSAGE = {"zh": 220, "en": 500}  # characters: a passage up to this long is the answer as it stands
SUPPORTED = 0.6  # share of the generated answer's words (Chinese: character pairs) that must occur in the passage
GENERATED_MAX_TOKENS = 96  # one short sentence; also bounds a rambling model's latency

TEXT = {
    "en": {"handoff": "I'm not sure about this one, so I've passed your question to a colleague who will get back to you shortly.",
           "system": "You are a customer-service assistant. Answer the customer's question in one short sentence, "
                     "using only the facts in the passage.",
           "passage": "Passage", "question": "Question",
           # One worked example (not from any KB): small models copy the shape, the relevant facts kept verbatim.
           "example": ("Descale the coffee machine every 3 months. Pour the descaler into the water tank and hold the "
                       "Clean button for 3 seconds.", "How do I descale it?",
                       "Pour the descaler into the water tank and hold the Clean button for 3 seconds.")},
    "zh": {"handoff": "这个问题我不太确定，已为您转接人工客服，请稍候。",
           "system": "你是客服助手。请只根据资料里的信息，用一句简短的话回答顾客的问题。",
           "passage": "资料", "question": "问题",
           "example": ("咖啡机需要每3个月除垢一次。除垢时把除垢剂倒入水箱，然后按住清洁键3秒。", "咖啡机多久除一次垢？",
                       "咖啡机需要每3个月除垢一次。")},
}




def rewrite(question: str, history: list[dict]) -> str:
    """Follow-ups ("how long does it take?") borrow the previous question's words for retrieval."""
    previous = [m["content"] for m in history if m.get("role") == "user"]
    if not previous:
        return question
    short = len(question.split()) <= 6 if not has_cjk(question) else len(question) <= 10
    return f"{previous[-1]} {question}" if short or _PRONOUNS.search(question) else question


class SupportTurn:
    def __init__(self, kb: KnowledgeBase, question: str, history: list[dict] | None = None,
                 cfg: SupportConfig | None = None, generator=None, rule: answerable.Rule | None = None,
                 reader=None) -> None:
        """generator: a chat Backend that writes the answer (None: extractive). reader: a reader.Reader
        that checks the passage answers the question before Loom answers from it (None: not checked).
        rule: answerable.Rule other than the shipped one (the benchmark's cross-validation)."""
        from loom.errors import InputError

        if not question.strip():
            raise InputError("the question is empty", "type a question")
        self.kb, self.question, self.history = kb, question, history or []
        self.cfg = cfg or SupportConfig()
        self.generator = generator  # a Backend with chat capability, or None
        self.lang = language(question)
        self.query = rewrite(question, self.history)
        candidates, top = search_detailed(kb, self.query, k=max(self.cfg.k, CANDIDATES))
        self.hits = candidates[: self.cfg.k]
        self.best, lexical = self._evidence(candidates, top)
        passage = f"{self.best.title} {self.best.text}" if self.best else ""
        shipped = rule is None
        rule = self._shipped_rule(reader is not None) if shipped else rule
        self.rule, self.reader = rule, reader
        unfamiliar = answerable.unfamiliar(kb, self.query)
        self.verdict = answerable.judge(kb, self.lang, top["dense"], passage, lexical, unfamiliar, rule)
        if self._worth_reading():
            try:
                self.best, lexical, read = self._read()
            except LoomError as e:  # a busy or failed reader: judged as if there were none, never fail the turn
                log.warning("support reader %s failed, answering without it: %s", reader.name, e)
                if shipped:  # READER_RULE is weighted for a verdict that never came: the plain rule instead
                    self.rule = rule = self._shipped_rule(False)
                    self.verdict = answerable.judge(kb, self.lang, top["dense"], passage, lexical, unfamiliar, rule)
            else:
                passage = f"{self.best.title} {self.best.text}"
                self.verdict = answerable.judge(kb, self.lang, top["dense"], passage, lexical, unfamiliar, rule, read)
        if self.cfg.handoff_below is not None:  # an operator's explicit cosine threshold wins over calibration
            self.verdict.answerable = top["dense"] >= self.cfg.handoff_below
        self.confidence = self.verdict.confidence
        self.citations: list[dict] = []
        self.handoff = False
        self.text = ""
        self.mode = ""
        self.fallback = ""  # why a generated answer was replaced by the extractive one
        self.draft = ""  # the chat model's own answer, shown or not
        self.graph_facts: list[dict] = []  # knowledge-graph facts added to the answer

    def _shipped_rule(self, with_reader: bool) -> answerable.Rule:
        rule = answerable.READER_RULE if with_reader else answerable.Rule()
        return rule if self.cfg.min_score is None else replace(rule, min_score=self.cfg.min_score)

    def _worth_reading(self) -> bool:
        """Ask the reader only where its verdict can turn the decision: a FAQ match only when the rule
        has it check those; never for an empty KB or a passage the encoder cannot read; otherwise when
        the evidence is nearer the bar than the reader's strongest verdict can move it (under
        READER_RULE, +-5.2: almost every question)."""
        v = self.verdict
        if self.reader is None or self.best is None or v.final or self.cfg.handoff_below is not None:
            return False
        if self._faq_candidate() is not None:
            return self.rule.faq_reader
        return self.rule.reader_can_decide(v.score, v.coverage, v.unfamiliar)

    def _read(self) -> tuple[Hit, float, float]:
        """(passage, its coverage, the reader's log-odds). The reader reads the chosen passage; unless it
        clearly answers (log-odds >= READ_MORE_BELOW) it reads the next candidates too, up to
        READ_CANDIDATES, and the answer comes from the one it rates highest if that beats the first by
        READ_SWITCH_MARGIN (its verdicts on near-equal passages are noise: over the benchmark's five
        domains switching on any gain lost 8 right firsts and won 13; with the margin lost 0, won 10). On
        one-line passages the encoder's first is often a neighbouring line: over the benchmark's
        plain-text notices it was right for 31 of 40 questions, the reader's pick of the top 3 for 37."""
        best, cover = self._ranked[0]
        odds = first_odds = self.reader.log_odds(reader_passage(best), self.question)
        if odds < READ_MORE_BELOW:
            for other, other_cover in self._ranked[1:READ_CANDIDATES]:
                other_odds = self.reader.log_odds(reader_passage(other), self.question)
                if other_odds > first_odds + READ_SWITCH_MARGIN and other_odds > odds:
                    best, cover, odds = other, other_cover, other_odds
        return best, cover, odds

    def reader_verdict(self) -> dict | None:
        """{"model", "p_answers"} when the reader was asked for this turn, else None."""
        if self.verdict.reader is None:
            return None
        from loom.apps.support.reader import probability

        return {"model": self.reader.name, "p_answers": round(probability(self.verdict.reader), 4)}

    def __iter__(self) -> Iterator[str]:
        faq = self._faq_match()
        if faq is not None:
            self.mode = "faq"
            yield from self._emit(f"{faq.faq['answer']} [1]", [faq])
        elif not self.hits or not self.verdict.answerable:
            self.mode, self.handoff = "handoff", True
            yield from self._emit(TEXT[self.lang]["handoff"], [])
            return
        elif self.generator is not None:
            yield from self._generate()
        else:
            self.mode = "extractive"
            yield from self._emit(self._extract(self.best) + " [1]", [self.best])
        yield from self._graph_facts()

    def extractive_answer(self) -> str:
        """What the extractive path says when the turn is answered (the FAQ answer when a FAQ question
        matches), whatever the verdict: the benchmark scores other rules without answering again."""
        faq = self._faq_match()
        if faq is not None:
            return faq.faq["answer"]
        return self._extract(self.best) if self.best else ""

    def _graph_facts(self) -> Iterator[str]:
        """Facts from the KB's knowledge graph around what the question names, each cited to the
        document that states it: answers that need a second fact from another passage get it."""
        from loom import home

        wanted = self.cfg.graph if self.cfg.graph is not None else home.kg_path(self.kb.name).is_file()
        if not wanted or not home.kg_path(self.kb.name).is_file():
            return
        from loom.apps.kg.context import facts_for
        from loom.apps.kg.store import Graph

        found = facts_for(Graph(self.kb.name), self.question, self.cfg.graph_hops, self.cfg.graph_facts)
        if not found:
            return
        first = len(self.citations) + 1
        lines = [f"- {f['text']} [{n}]" for n, f in enumerate(found, first)]
        heading = "知识图谱中的相关事实" if self.lang == "zh" else "Related facts from the knowledge graph"
        piece = f"\n\n{heading}:\n" + "\n".join(lines)
        self.text += piece
        self.citations += [{"n": n, "source": f["source"], "title": "knowledge graph", "chunk_id": None, "text": f["sentence"],
                            "fact": f["text"]} for n, f in enumerate(found, first)]
        self.graph_facts = found
        yield piece

    def _evidence(self, candidates: list[Hit], top: dict) -> tuple[Hit | None, float]:
        """The passage an answer comes from, and its coverage of the question: among the candidates in
        the question's language (any, if none is), the highest encoder similarity plus small credits for
        holding the question's rare words and every code it names ("E04"). The encoder alone picks the
        wrong one of near-identical manual sections (the E03 and E04 rows of an error table; the range
        with and without pedalling); BM25's first is wrong more often still (fused first: 119 of 148
        in-scope questions over bench/data/support's three domains, the encoder alone 138, this rule 145)."""
        pool = [h for h in candidates if "dense" in h.scores]
        if top["dense_id"] is not None and all(h.chunk_id != top["dense_id"] for h in pool):
            found = hit(self.kb, top["dense_id"], {"dense": round(top["dense"], 6)})
            pool += [found] if found else []
        if not pool:
            self._ranked = [(candidates[0], 0.0)] if candidates else []
            return (candidates[0], 0.0) if candidates else (None, 0.0)
        pool = [h for h in pool if language(h.text) == self.lang] or pool
        codes = {c.lower().replace("-", "") for c in _CODE.findall(self.query)}
        scored = []
        for h in pool:
            text = f"{h.title} {h.text}"
            cover = answerable.coverage(self.kb, self.query, text)
            named = bool(codes) and codes <= {c.lower().replace("-", "") for c in _CODE.findall(text)}
            scored.append((h.scores["dense"] + CHOOSE_COVERAGE * cover + CHOOSE_CODE * named, cover, h))
        scored.sort(key=lambda t: -t[0])  # stable: equal scores keep the search's order
        self._ranked = [(h, cover) for _, cover, h in scored]
        return self._ranked[0]

    @property
    def faq_score(self) -> float | None:
        """The best passage's FAQ question on the scale from off-topic (0) to asked verbatim (1); None
        when the best passage is not a FAQ pair."""
        top = self.best
        if top is None or not top.faq or "faq" not in top.scores:
            return None
        return answerable.faq_score(self.kb, self.lang, top.scores["faq"])

    def _faq_match(self) -> Hit | None:
        """The best passage when it is a FAQ pair whose question is clearly the customer's, and the
        reader (when the rule has it check FAQ matches) did not find the answer missing from it: "怎么申请
        信用卡？" is close to the payment-methods FAQ, which does not say."""
        found = self._faq_candidate()
        if found is None or self.rule.faq_reader and self.verdict.reader is not None and self.verdict.reader < 0:
            return None
        return found

    def _faq_candidate(self) -> Hit | None:
        """The best passage when it is a FAQ pair whose question is clearly the customer's by similarity."""
        score = self.faq_score
        if score is None:
            return None
        if self.cfg.faq_above is not None:
            return self.best if self.best.scores["faq"] >= self.cfg.faq_above else None
        return self.best if score >= self.rule.faq_min_score else None

    def _emit(self, text: str, cited: list[Hit]) -> Iterator[str]:
        self.text = text
        self.citations = [_citation(i, h) for i, h in enumerate(cited, 1)]
        yield text

    def _extract(self, hit: Hit) -> str:
        """The passage itself when short, else its sentences that share the most words with the question."""
        body = hit.faq["answer"] if hit.faq else hit.text
        if len(body) <= SHORT_PASSAGE[self.lang]:
            return body
        wanted = {t for t in search_terms(self.query) if t not in EN_STOPWORDS}
        ranked = sorted(enumerate(sentences(body)), key=lambda p: (-len(wanted & set(search_terms(p[1]))), p[0]))[:3]
        joiner = "" if self.lang == "zh" else " "
        return joiner.join(s for _, s in sorted(ranked))

    def _generate(self) -> Iterator[str]:
        """One sentence from the best passage, buffered so an unsupported answer is never shown."""
        from loom.backends.base import Request, Sampling

        best, words = self.best, TEXT[self.lang]
        passage = f"{best.title}: {best.text}" if best.title and not best.faq else best.text
        example_passage, example_question, example_answer = words["example"]
        messages = [{"role": "system", "content": words["system"]},
                    {"role": "user", "content": _prompt(self.lang, example_passage, example_question)},
                    {"role": "assistant", "content": example_answer},
                    *self.history[-4:],
                    {"role": "user", "content": _prompt(self.lang, passage, self.question)}]
        sampling = Sampling(max_tokens=min(self.cfg.max_tokens, GENERATED_MAX_TOKENS), temperature=0)
        answer = "".join(c.text for c in self.generator.stream(Request(sampling, messages=messages))).strip()
        answer = answer.split("\n")[0].strip()  # one sentence was asked for; later lines are the model wandering
        self.draft = answer
        body = best.faq["answer"] if best.faq else best.text
        self.fallback = _problem(answer, passage, key_sentence(body, self.query, "" if best.faq else best.title), self.question)
        if self.fallback:
            self.mode = "extractive"
            yield from self._emit(self._extract(best) + " [1]", [best])
        else:
            self.mode = "generated"
            yield from self._emit(f"{answer} [1]", [best])

    def record(self, conversation: str) -> None:
        self.kb.log_turn(conversation, "user", self.question)
        self.kb.log_turn(conversation, "assistant", self.text, self.citations, self.confidence, self.handoff)


def reader_passage(hit: Hit) -> str:
    """The passage as the reader sees it: a FAQ pair as question and answer, a section under its heading."""
    if hit.faq:
        return f"Q: {hit.faq['question']}\nA: {hit.faq['answer']}"
    return f"{hit.title}\n{hit.text}" if hit.title else hit.text


def _prompt(lang: str, passage: str, question: str) -> str:
    words, colon = TEXT[lang], "：" if lang == "zh" else ": "
    return f"{words['passage']}{colon}{passage}\n\n{words['question']}{colon}{question}"


def _problem(answer: str, passage: str, key_sentence: str, question: str) -> str:
    """Why a generated answer must not be shown ('' when it may). It is checked against the
    extractive answer: it must keep every fact (number, quoted name, code such as E2) of the passage
    sentence that best matches the question, its words must come from the passage, and it must add
    something from the passage to the question ("Yes, you can put cleaner in the tank" adds nothing)."""
    if not answer:
        return "empty"
    if _BARE.match(answer):
        return "bare number"
    if any(p in answer.lower() for p in _IDK):
        return "the model found no answer in a passage judged to hold one"
    said = fold(answer)
    missing = [f for f in facts(key_sentence) if fold(f) not in said]
    if missing:
        return f"leaves out {missing[0]!r} from the passage"
    if support(answer, passage) < SUPPORTED:
        return "unsupported by the passage"
    if not (_units(answer) - _units(question)) & _units(passage):
        return "adds nothing from the passage to the question"
    return ""


_FACT = re.compile(r"[“\"「『《]([^”\"」』》]{1,40})[”\"」』》]|\d+(?:[.,:\-–~]\d+)*")


def facts(sentence: str) -> list[str]:
    """Numbers (2.4, 3-5, 9:00, 4,000) and quoted names ("你好小鹿", "Schedule") in a sentence."""
    return list(dict.fromkeys(m.group(1) or m.group(0) for m in _FACT.finditer(sentence)))


def key_sentence(passage: str, query: str, title: str = "") -> str:
    """The passage sentence sharing the most (non-stop) words with the query; the first on ties. When
    the heading matches the query better than any sentence ("恢复出厂设置" for "怎么恢复出厂设置？"), the
    section as a whole answers it and its opening sentence is the key one."""
    wanted = {t for t in search_terms(query) if t not in EN_STOPWORDS}
    parts = [p for p in sentences(passage) if re.search(r"[^\W\d_]", p)] or [passage]  # list markers ("1.") out
    overlap = [len(wanted & set(search_terms(s))) for s in parts]
    best = max(range(len(parts)), key=lambda i: (overlap[i], -i))
    heading = len(wanted & set(search_terms(title.split(" > ")[-1]))) if title else 0
    return parts[0] if heading > overlap[best] else parts[best]


def _units(text: str) -> set[str]:
    """Chinese character pairs and other words, lowercased, stop words out."""
    text = text.lower()
    pairs = set()
    for run in CJK_RUN.findall(text):
        pairs |= {run[i:i + 2] for i in range(max(1, len(run) - 1))}
    words = {w for w in re.findall(r"[^\W_]+", CJK_CHAR.sub(" ", text)) if w not in EN_STOPWORDS}
    return pairs | words


def support(answer: str, passage: str) -> float:
    """Share of the answer's units (Chinese character pairs, other words) found in the passage."""
    wanted = _units(answer)
    return len(wanted & _units(passage)) / len(wanted) if wanted else 0.0


def _citation(n: int, hit: Hit) -> dict:
    return {"n": n, "source": hit.source, "title": hit.title, "chunk_id": hit.chunk_id, "text": hit.text, **(hit.locator or {})}
