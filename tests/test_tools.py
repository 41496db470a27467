"""Tool calling: the decode path finds calls in any form a model writes (scripted replies through the
real SequenceState), and the server speaks OpenAI's tools protocol to the official openai SDK and to
LangChain: required / named / none choice, streamed deltas, tool results, bad input as 400s."""

from __future__ import annotations

import json

import openai
import pytest
import torch

from loom.backends.base import Chunk
from loom.backends.local import BatchedLM
from test_serve import client, server  # noqa: F401  a live `loom serve` on served_home; 'slow' loads on first use

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
                                            "parameters": {"type": "object", "properties": {
                                                "city": {"type": "string", "maxLength": 12},
                                                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                                                "required": ["city"], "additionalProperties": False}}}
MULTIPLY = {"type": "function", "function": {"name": "multiply", "description": "Multiply two numbers",
                                             "parameters": {"type": "object", "properties": {
                                                 "a": {"type": "integer", "minimum": 0, "maximum": 99},
                                                 "b": {"type": "integer", "minimum": 0, "maximum": 99}},
                                                 "required": ["a", "b"], "additionalProperties": False}}}
TOOLS = [WEATHER, MULTIPLY]


def check_arguments(name: str, arguments: str) -> dict:
    """The arguments parse and follow the declared parameters (checked by hand, not by the engine)."""
    args = json.loads(arguments)
    if name == "get_weather":
        assert set(args) <= {"city", "unit"} and isinstance(args["city"], str) and len(args["city"]) <= 12
        assert args.get("unit", "celsius") in ("celsius", "fahrenheit")
    else:
        assert name == "multiply" and set(args) == {"a", "b"}
        assert all(isinstance(v, int) and 0 <= v <= 99 for v in args.values())
    return args


# ---- the decode path, scripted ----------------------------------------------------------------------------

def _scripted(tokenizer, tools, reply: str):
    """Decode `reply` token by token through SequenceState as if a model had chosen it (its token gets
    the top logit each step; a grammar, once installed, must allow it). -> content, calls, finish."""
    from loom.backends.base import Sampling, join_calls
    from loom.model.decode import SequenceState

    state = SequenceState.from_sampling(tokenizer, [1], Sampling(max_tokens=400, temperature=0), {tokenizer.eos_token_id},
                                        4096, tools)
    script = tokenizer.encode(reply, add_special_tokens=False) + [tokenizer.eos_token_id]
    pieces, calls = [], []
    for want in script:
        logits = torch.zeros(len(tokenizer))
        logits[want] = 10.0
        tid = state.choose(logits)
        assert tid == want, f"the grammar refused {tokenizer.decode([want])!r} after {tokenizer.decode(state.completion_ids)!r}"
        pieces.append(state.push(tid))
        join_calls(calls, state.take_tool_calls())
        if state.finish_reason:
            break
    return "".join(pieces), calls, state.finish_reason


def test_calls_in_every_form_a_model_writes_become_tool_calls(pipeline):
    from transformers import AutoTokenizer

    from loom.model.tools import Tool, ToolSet

    tok = AutoTokenizer.from_pretrained(pipeline["home"] / "runs" / "nano" / "model")
    tools = ToolSet([Tool(t["function"]["name"], t["function"]["description"], t["function"]["parameters"]) for t in TOOLS])
    pretty = '{\n  "name": "get_weather",\n  "arguments": {\n    "city": "北京",\n    "unit": "celsius"\n  }\n}'
    cases = {
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>':
            ("Let me check.", [("get_weather", {"city": "Paris"})]),
        f"```json\n{pretty}\n```": ("", [("get_weather", {"city": "北京", "unit": "celsius"})]),
        '{"name": "multiply", "arguments": {"a": 12, "b": 7}}': ("", [("multiply", {"a": 12, "b": 7})]),
        '[{"name": "multiply", "arguments": {"a": 1, "b": 2}}, {"name": "get_weather", "arguments": {"city": "Oslo"}}]':
            ("", [("multiply", {"a": 1, "b": 2}), ("get_weather", {"city": "Oslo"})]),
        '<tool_call>\n{"name": "multiply", "arguments": {"a": 3, "b": 4}}\n</tool_call>\n<tool_call>\n'
        '{"name": "multiply", "arguments": {"a": 5, "b": 6}}\n</tool_call>':
            ("", [("multiply", {"a": 3, "b": 4}), ("multiply", {"a": 5, "b": 6})]),
    }
    for reply, (content, expected) in cases.items():
        text, calls, finish = _scripted(tok, tools, reply)
        assert text.strip() == content and finish == "tool_calls", (reply, text, calls)
        assert [(c["name"], check_arguments(c["name"], c["arguments"])) for c in calls] == expected
        assert all(c["id"].startswith("call_") for c in calls) and len({c["id"] for c in calls}) == len(calls)
    # Text that only looks like a call (an undeclared tool, braces in prose, a code fence) stays content.
    for reply in ('{"name": "search_web", "arguments": {"q": "x"}}', "Use {x} and [1, 2] here.",
                  '```json\n{"name": "delete_all", "arguments": {}}\n```', '```python\nprint({"a": 1})\n```', "天气：{晴}"):
        text, calls, finish = _scripted(tok, tools, reply)
        assert (text, calls, finish) == (reply, [], "stop")


# ---- the server ---------------------------------------------------------------------------------------------

ASK = [{"role": "user", "content": "What is the weather in Paris? 巴黎天气如何？"}]


def test_grounding_tells_a_call_the_request_asked_for_from_one_it_did_not():
    from loom.model.grounding import conversation_units, grounded

    params = WEATHER["function"]["parameters"]
    said = lambda text: conversation_units([{"role": "user", "content": text}])  # noqa: E731
    assert not grounded('{"city": "北京", "unit": "fahrenheit"}', params, said("你好"))  # a greeting names no city
    assert not grounded('{"city": "Toronto"}', params, said("What is the capital of Canada?"))
    assert grounded('{"city": "上海"}', params, said("上海明天会下雨吗？"))
    assert grounded('{"city": "San Francisco", "unit": "celsius"}', params, said("Is it cold in san francisco?"))
    convert = {"type": "object", "properties": {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}}}
    assert grounded('{"amount": 100, "from": "USD", "to": "CNY"}', convert, said("帮我把100美元换成人民币"))  # its number was said
    stock = {"type": "object", "properties": {"symbol": {"type": "string"}}}
    assert not grounded('{"symbol": "AAPL"}', stock, said("How many legs does a spider have?"))  # a code from nowhere
    assert grounded('{"symbol": "0700.HK"}', stock, said("0700.HK 现在多少钱一股？"))
    assert grounded('{"unit": "celsius"}', params, said("hi"))  # enum values come from the schema


class ScriptedLM(BatchedLM):
    """A BatchedLM whose generations are scripted: a call to get_weather while tools are on, text once
    they are off: what the gate sees from a model that calls a tool for a greeting."""

    def __init__(self, call: dict, text_first: str = "") -> None:
        self.call, self.text_first, self.runs = call, text_first, []

    def _stream(self, request):
        self.runs.append(request.tools.choice)
        if request.tools.choice == "none":
            yield Chunk("Hello! How can I help?")
            yield Chunk("", "stop", 20, 6)
            return
        if self.text_first:
            yield Chunk(self.text_first)
        yield Chunk("", tool_calls=[{"index": 0, "id": "call_1", "name": "get_weather", "arguments": ""}])
        yield Chunk("", tool_calls=[{"index": 0, "arguments": json.dumps(self.call)}])
        yield Chunk("", "tool_calls", 60, 12)

    async def _astream(self, request):
        for chunk in self._stream(request):
            yield chunk


@pytest.mark.parametrize("asked, call, reply, finish", [
    ("你好", {"city": "北京"}, "Hello! How can I help?", "stop"),  # dropped: answered again without tools
    ("北京天气怎么样", {"city": "北京"}, "", "tool_calls"),  # the city was said: the call stands
])
def test_a_call_nobody_asked_for_is_dropped_and_answered_in_text(asked, call, reply, finish):
    import asyncio

    from loom.backends.base import Request, Sampling, collect, join_calls
    from loom.model.tools import Tool, ToolSet

    tools = ToolSet([Tool("get_weather", "", WEATHER["function"]["parameters"])])
    request = Request(Sampling(max_tokens=50), messages=[{"role": "user", "content": asked}], tools=tools)
    lm = ScriptedLM(call)
    done = collect(lm.stream(request))
    assert (done.text, done.finish_reason) == (reply, finish) and lm.runs == (["auto", "none"] if reply else ["auto"])
    assert bool(done.tool_calls) == (finish == "tool_calls")
    if reply:
        assert done.extra["dropped_tool_calls"][0]["name"] == "get_weather" and done.completion_tokens == 6 + 12

    async def streamed():
        chunks = [c async for c in ScriptedLM(call).astream(request)]
        calls = []
        for c in chunks:
            join_calls(calls, c.tool_calls)
        return "".join(c.text for c in chunks), chunks[-1].finish_reason, calls

    text, last, calls = asyncio.run(streamed())
    assert (text, last, len(calls)) == (reply, finish, 0 if reply else 1)
    off = Request(Sampling(max_tokens=50), messages=request.messages,
                  tools=ToolSet(tools.tools, "auto", ground=False))  # ground_tool_calls: false
    assert collect(ScriptedLM(call).stream(off)).finish_reason == "tool_calls"
    text_then_call = collect(ScriptedLM(call, text_first="Sure. ").stream(request))
    assert (text_then_call.text, text_then_call.finish_reason) == (("Sure. ", "stop") if reply else ("Sure. ", "tool_calls"))


def test_required_and_named_choice_always_call_with_valid_arguments(client):
    """A random model (slow: the generic tool format, whose prompt outgrows nano's 128-token context)
    still returns calls that validate: the grammar holds the reply from its first token. Named choice:
    exactly that tool, once."""
    for seed in range(3):
        kw = dict(model="slow", messages=ASK, tools=TOOLS, max_tokens=400, temperature=1.0, seed=seed)
        choice = client.chat.completions.create(tool_choice="required", parallel_tool_calls=False, **kw).choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None, choice
        for call in choice.message.tool_calls:
            assert call.type == "function" and call.id.startswith("call_")
            check_arguments(call.function.name, call.function.arguments)
        named = client.chat.completions.create(tool_choice={"type": "function", "function": {"name": "multiply"}}, **kw)
        (call,) = named.choices[0].message.tool_calls
        assert call.function.name == "multiply" and named.choices[0].finish_reason == "tool_calls"
        check_arguments("multiply", call.function.arguments)


def test_streamed_calls_send_id_and_name_once_then_argument_pieces(client):
    kw = dict(model="slow", messages=ASK, tools=TOOLS, max_tokens=400, temperature=1.0, seed=4,
              tool_choice={"type": "function", "function": {"name": "get_weather"}})
    whole = client.chat.completions.create(**kw).choices[0].message.tool_calls[0]
    deltas, finish = [], None
    for chunk in client.chat.completions.create(**kw, stream=True):
        if chunk.choices:
            deltas += chunk.choices[0].delta.tool_calls or []
            finish = chunk.choices[0].finish_reason or finish
    first, rest = deltas[0], deltas[1:]
    assert first.id.startswith("call_") and first.type == "function" and first.function.name == "get_weather"
    assert rest and all(d.id is None and d.function.name is None and d.index == 0 for d in rest)
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert arguments == whole.function.arguments and finish == "tool_calls"
    check_arguments("get_weather", arguments)


def test_tool_results_render_and_none_choice_answers_in_text(client):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    history = ASK + [{"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18, "sky": "多云"}'}]
    answer = client.chat.completions.create(model="slow", messages=history, tools=TOOLS, tool_choice="none", max_tokens=8)
    assert answer.choices[0].message.tool_calls is None and isinstance(answer.choices[0].message.content, str)
    auto = client.chat.completions.create(model="slow", messages=history, tools=TOOLS, max_tokens=8)
    assert auto.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_bad_tools_are_400s_naming_the_field(client):
    def bad(**kw) -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="slow", messages=kw.pop("messages", ASK), max_tokens=4, **kw)
        return e.value

    fn = lambda name, parameters: {"type": "function", "function": {"name": name, "parameters": parameters}}  # noqa: E731
    assert bad(tools=[fn("bad name!", {"type": "object"})]).param == "tools.0.function.name"
    assert bad(tools=[fn("f", {"type": 5})]).param == "tools[0].function.parameters"
    assert bad(tools=[fn("f", {"type": "object"}), fn("f", {"type": "object"})]).param == "tools[1].function.name"
    e = bad(tools=[fn("f", {"type": "object", "properties": {"a": {"type": "wat"}}})])
    assert e.param == "tools[0].function.parameters" and "wat" in e.message
    assert bad(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}).param == "tool_choice"
    assert bad(tool_choice="required").param == "tool_choice"
    e = bad(messages=ASK + [{"role": "tool", "tool_call_id": "call_zz", "content": "1"}])
    assert e.param == "messages[1].tool_call_id"
    assert bad(tools=TOOLS, response_format={"type": "json_object"}).param == "response_format"
    assert bad(logprobs=True, top_logprobs=21).param == "top_logprobs"


def test_langchain_bind_tools_and_structured_output(server):
    """LangChain 1.x against Loom: bind_tools with a forced tool, then with_structured_output."""
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel, Field

    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    llm = ChatOpenAI(model="slow", base_url=server.url + "/v1", api_key="unused", max_tokens=400,
                     temperature=1.0, seed=0, max_retries=0)  # a random model: greedy repeats one token
    reply = llm.bind_tools([multiply], tool_choice="multiply", strict=True).invoke("What is 12 times 7?")
    (call,) = reply.tool_calls
    assert call["name"] == "multiply" and isinstance(call["args"]["a"], int) and isinstance(call["args"]["b"], int)

    class City(BaseModel):
        name: str = Field(max_length=20)
        population: int

    city = llm.with_structured_output(City, method="json_schema").invoke("Describe Paris.")
    assert isinstance(city, City) and len(city.name) <= 20
