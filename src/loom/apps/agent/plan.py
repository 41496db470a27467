"""Questions that ask several things (issue 33's multi-tool tasks): a small model makes one call and
answers. On the 12 two-part tasks of bench/agent.py, qwen2.5-1.5b looked up the order of "which carrier
has order A1001, and how long do refunds take?" and then answered the refund half from nowhere ("15
days"), 0 of 12 right. So the agent first asks the model, under a JSON Schema, for the separate things
the question asks (at most three); a question with two or three parts gets one required tool call per
part, each made with that part as the last user turn, before the model answers the whole question from
every result. A one-part question runs the loop as before.

What the model reads after tool results is said in the question's language: told in English, it
answered Chinese questions in English."""

from __future__ import annotations

import json

from loom.backends.base import Backend, Request, Sampling, collect

MAX_PARTS = 3
_SPLIT = {
    "en": "List the separate things this question asks, each as a short question of its own, in the question's language. "
          "A question that asks one thing is a list of one.\n\nQuestion: {q}",
    "zh": "列出这个问题分别问了哪几件事，每件事写成一个独立的简短问题，使用问题原来的语言。只问了一件事就只列一项。\n\n问题：{q}",
}
_SCHEMA = {"type": "object", "properties": {"parts": {"type": "array", "items": {"type": "string", "minLength": 2, "maxLength": 120},
                                                      "minItems": 1, "maxItems": MAX_PARTS}}, "required": ["parts"]}
_FOCUS = {"en": "Look this up now: {part}", "zh": "现在查询：{part}"}
_GO_ON = {"en": "The question: {q}\nIf the tool results above answer every part of it, answer it in plain text, in English, "
                "with the facts they give. If a part is still unknown, call the tool that finds it.",
          "zh": "用户的问题：{q}\n如果上面的工具结果已经回答了这个问题的每一部分，请根据结果用中文回答；如果还有不知道的部分，请调用能查到它的工具。"}


def parts(backend: Backend, question: str, lang: str, used: list[int]) -> list[str]:
    """The separate things `question` asks (1-3); [question] when the model's list is unusable."""
    request = Request(Sampling(max_tokens=200, temperature=0.0, json_schema=_SCHEMA),
                      messages=[{"role": "user", "content": _SPLIT[lang].format(q=question)}])
    reply = collect(backend.stream(request))
    used[0] += reply.prompt_tokens
    used[1] += reply.completion_tokens
    try:
        found = [p.strip() for p in json.loads(reply.text)["parts"] if p.strip()]
    except (ValueError, KeyError, TypeError, AttributeError):
        return [question]
    return list(dict.fromkeys(found))[:MAX_PARTS] or [question]


def focus(part: str, lang: str) -> dict:
    return {"role": "user", "content": _FOCUS[lang].format(part=part)}


def go_on(lang: str, question: str) -> str:
    """After tool results: the question again (after pages of results a small model answered a FAQ
    entry's question instead of the user's), in its own language."""
    return _GO_ON[lang].format(q=question[:500])
