"""Answering one customer turn: rewrite a follow-up with the history, retrieve, then

  1. a FAQ question close enough to the customer's -> its answer, cited;
  2. best passage too far from the question (below `handoff_below`) -> a polite hand-off, flagged;
  3. a chat model configured -> an answer written from the numbered passages only, citing [n],
     "I don't know" (then flagged) when they do not hold the answer;
  4. otherwise -> extractive: the passage sentences that share the most words with the question.

    turn = SupportTurn(kb, "退货要多久？", history=[], cfg=SupportConfig())
    for piece in turn: print(piece, end="")       # streams when a chat model writes the answer
    turn.citations, turn.confidence, turn.handoff
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from loom.apps.support.retrieve import Hit, search
from loom.apps.support.store import KnowledgeBase
from loom.config import SupportConfig
from loom.data.clean import EN_STOPWORDS
from loom.data.words import search_terms

THRESHOLDS = {"minilm": (0.35, 0.75), "e5": (0.80, 0.90)}  # (handoff_below, faq_above) cosine similarity
_PRONOUNS = re.compile(r"\b(it|its|that|this|those|these|they|them|there)\b|它|这个|那个|这些|那些|其|该", re.I)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_IDK = ("i don't know", "i do not know", "我不知道", "不知道")

TEXT = {
    "en": {"handoff": "I'm not sure about this one, so I've passed your question to a colleague who will get back to you shortly.",
           "system": "You are a customer-service assistant. Answer the customer's question using only the numbered passages. "
                     "Cite each passage you use like [1]. If the passages do not contain the answer, reply exactly: I don't know.",
           "idk": "I don't know."},
    "zh": {"handoff": "这个问题我不太确定，已为您转接人工客服，请稍候。",
           "system": "你是客服助手。只根据下面编号的资料回答顾客的问题，并用[1]这样的编号注明引用的资料。"
                     "如果资料里没有答案，请只回答：我不知道。",
           "idk": "我不知道。"},
}


def language(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def rewrite(question: str, history: list[dict]) -> str:
    """Follow-ups ("how long does it take?") borrow the previous question's words for retrieval."""
    previous = [m["content"] for m in history if m.get("role") == "user"]
    if not previous:
        return question
    short = len(question.split()) <= 6 if not _CJK.search(question) else len(question) <= 10
    return f"{previous[-1]} {question}" if short or _PRONOUNS.search(question) else question


class SupportTurn:
    def __init__(self, kb: KnowledgeBase, question: str, history: list[dict] | None = None,
                 cfg: SupportConfig | None = None, generator=None) -> None:
        from loom.errors import InputError

        if not question.strip():
            raise InputError("the question is empty", "type a question")
        self.kb, self.question, self.history = kb, question, history or []
        self.cfg = cfg or SupportConfig()
        self.generator = generator  # a Backend with chat capability, or None
        handoff_default, faq_default = THRESHOLDS.get(kb.encoder_name, THRESHOLDS["minilm"])
        self.handoff_below = self.cfg.handoff_below if self.cfg.handoff_below is not None else handoff_default
        self.faq_above = self.cfg.faq_above if self.cfg.faq_above is not None else faq_default
        self.lang = language(question)
        self.query = rewrite(question, self.history)
        self.hits: list[Hit] = search(kb, self.query, k=self.cfg.k)
        self.confidence = max((h.scores.get("dense", -1.0) for h in self.hits), default=-1.0)
        self.citations: list[dict] = []
        self.handoff = False
        self.text = ""
        self.mode = ""

    def __iter__(self) -> Iterator[str]:
        faq = next((h for h in self.hits if h.faq and h.scores.get("faq", -1.0) >= self.faq_above), None)
        if faq is not None:
            self.mode, self.confidence = "faq", max(self.confidence, faq.scores["faq"])
            yield from self._emit(f"{faq.faq['answer']} [1]", [faq])
        elif not self.hits or self.confidence < self.handoff_below:
            self.mode, self.handoff = "handoff", True
            yield from self._emit(TEXT[self.lang]["handoff"], [])
        elif self.generator is not None:
            self.mode = "generated"
            yield from self._generate()
        else:
            self.mode = "extractive"
            yield from self._extract()

    def _emit(self, text: str, cited: list[Hit]) -> Iterator[str]:
        self.text = text
        self.citations = [_citation(i, h) for i, h in enumerate(cited, 1)]
        yield text

    def _extract(self) -> Iterator[str]:
        wanted = {t for t in search_terms(self.query) if t not in EN_STOPWORDS}
        parts, cited = [], []
        for hit in self.hits[:2]:
            from loom.apps.support.chunking import sentences

            body = hit.faq["answer"] if hit.faq else hit.text
            scored = [(len(wanted & set(search_terms(s))), -i, s) for i, s in enumerate(sentences(body))]
            best = sorted(scored, reverse=True)[:2 if not cited else 1]
            best = [b for b in best if b[0] > 0 or not cited]  # the top passage always speaks; the second only if relevant
            if not best:
                continue
            cited.append(hit)
            ordered = [s for _, _, s in sorted(best, key=lambda b: -b[1])]
            parts.append(("" if self.lang == "zh" else " ").join(ordered) + f" [{len(cited)}]")
        yield from self._emit(("" if self.lang == "zh" else " ").join(parts), cited)

    def _generate(self) -> Iterator[str]:
        from loom.backends.base import Request, Sampling

        passages = "\n".join(f"[{i}] {h.title + ': ' if h.title else ''}{h.text}" for i, h in enumerate(self.hits, 1))
        label = "资料" if self.lang == "zh" else "Passages"
        ask = "问题" if self.lang == "zh" else "Question"
        messages = [{"role": "system", "content": TEXT[self.lang]["system"]}, *self.history[-4:],
                    {"role": "user", "content": f"{label}:\n{passages}\n\n{ask}: {self.question}"}]
        pieces = []
        for chunk in self.generator.stream(Request(Sampling(max_tokens=self.cfg.max_tokens, temperature=0), messages=messages)):
            pieces.append(chunk.text)
            if chunk.text:
                yield chunk.text
        self.text = "".join(pieces).strip()
        used = sorted({int(n) for n in re.findall(r"\[(\d+)\]", self.text) if 1 <= int(n) <= len(self.hits)})
        self.citations = [_citation(n, self.hits[n - 1]) for n in used]
        if not self.text or any(p in self.text.lower() for p in _IDK):
            self.handoff = True  # the model could not answer from the passages: a person should

    def record(self, conversation: str) -> None:
        self.kb.log_turn(conversation, "user", self.question)
        self.kb.log_turn(conversation, "assistant", self.text, self.citations, self.confidence, self.handoff)


def _citation(n: int, hit: Hit) -> dict:
    return {"n": n, "source": hit.source, "title": hit.title, "chunk_id": hit.chunk_id, "text": hit.text}
