"""Is a tool call grounded in the conversation? A small model given tools calls one for requests that
need none: asked "你好" with get_weather declared, qwen2.5-0.5b calls get_weather(city="北京"); asked
"What is the capital of Canada?", get_weather(city="Toronto"). The arguments of such calls come from
nowhere: no word of "北京" or "Toronto" was said. A call the user asked for carries at least one
value the conversation holds ("weather in Paris" -> city="Paris", "email Bob" -> to="bob@...").

    grounded(call arguments, tool, conversation) -> bool

Free-text arguments decide. Enum values and booleans come from the schema, and numbers are often spelt
("两百", "a dozen"), so neither counts for or against a call. Codes (2-6 capitals or digits: "USD",
"AAPL", "A12345") are rightly derived from other words ("USD" for 美元), so they count only for a call:
a call whose only free text is codes is grounded when one of its codes, or one of its numbers,
occurs in the conversation ("100美元换人民币" -> amount 100; "track A12345"), and not otherwise
(get_stock_price(symbol="AAPL") for "How many legs does a spider have?"). Dates stay free text: a
call rarely has only a date, and "10:00" for "上午10点" is held by its "10". A string argument counts as
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
    leaves = list(_leaves(args, parameters.get("properties") or {}))
    free = [v for k, v in leaves if _free_text(v, k)]
    if free:
        return any(held(v, said) for v in free)
    codes = [v.strip() for k, v in leaves if _code(v, k)]
    if not codes:
        return True
    numbers = [_number_text(v) for _, v in leaves if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return any(held(c, said) for c in codes) or any(n in said for n in numbers)


def _code(value, schema: dict) -> bool:
    return isinstance(value, str) and "enum" not in schema and "const" not in schema and bool(_CODE.match(value.strip()))


def _number_text(value: float) -> str:
    """100.0 -> "100", as units() splits "100美元" into "100"."""
    return str(int(value)) if float(value).is_integer() else str(value)


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
