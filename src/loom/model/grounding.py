"""Is a tool call grounded in the conversation? A small model given tools calls one for requests that
need none: asked "你好" with get_weather declared, qwen2.5-0.5b calls get_weather(city="北京"); asked
"What is the capital of Canada?", get_weather(city="Toronto"). The arguments of such calls come from
nowhere: no word of "北京" or "Toronto" was said. A call the user asked for carries at least one
value the conversation holds ("weather in Paris" -> city="Paris", "email Bob" -> to="bob@...").

    grounded(call arguments, tool, conversation) -> bool

Only free-text arguments are looked at. Left out, because a model rightly derives them from words that
differ: enum values and booleans (from the schema), numbers (spelt "两百", "a dozen") and codes
("USD" for 美元, "AAPL" for Apple: 2-6 capitals or digits). Dates stay in: a call rarely has only a
date, and "10:00" for "上午10点" is held by its "10". A string argument counts as
held when at least half of its units (each Chinese character, other words lowercased; NFKC, so
full-width forms match) occur in the conversation. A call is grounded when it has no free-text
argument, or at least one that is held. What the rule was chosen on, and what it costs in needed
calls, is in docs/tools.md (bench/function_calling.py: chosen on the dev domain, reported on two
held-out domains)."""

from __future__ import annotations

import json
import re
import unicodedata

from loom.text import units

HELD_SHARE = 0.5
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{1,5}$")


def conversation_units(messages: list[dict]) -> set[str]:
    text = " ".join(m.get("content") if isinstance(m.get("content"), str) else "" for m in messages)
    return set(units(unicodedata.normalize("NFKC", text)))


def _free_text(value, schema: dict) -> bool:
    if not isinstance(value, str) or "enum" in schema or "const" in schema or not value.strip():
        return False
    return not _CODE.match(value.strip())


def held(value: str, said: set[str]) -> bool:
    own = units(unicodedata.normalize("NFKC", value))
    return bool(own) and sum(u in said for u in own) >= HELD_SHARE * len(own)


def grounded(arguments: str, parameters: dict, said: set[str]) -> bool:
    try:
        args = json.loads(arguments)
    except json.JSONDecodeError:
        return True  # not ours to judge: the grammar already held it to the schema
    if not isinstance(args, dict):
        return True
    properties = parameters.get("properties") or {}
    free = [v for k, v in _leaves(args, properties) if _free_text(v, k)]
    return not free or any(held(v, said) for v in free)


def _leaves(args: dict, properties: dict):
    """(schema, value) for each string value, nested objects and arrays included."""
    for key, value in args.items():
        schema = properties.get(key) if isinstance(properties.get(key), dict) else {}
        if isinstance(value, dict):
            yield from _leaves(value, schema.get("properties") or {})
        elif isinstance(value, list):
            items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
            for v in value:
                if isinstance(v, dict):
                    yield from _leaves(v, items.get("properties") or {})
                else:
                    yield items, v
        else:
            yield schema, value
