"""Agents (issue 33): a chat model, instructions and a set of Loom's built-in tools, run as a loop
(model -> tool calls -> results -> model) until the model answers or a limit is reached.

    save("shop-helper", AgentConfig(model="qwen2.5-0.5b", tools=["kb_search", "calculator"], ...))
    for event in run(load("shop-helper"), [{"role": "user", "content": "..."}]): ...   # Step, then Answer

Served as the OpenAI model `agent:NAME` (AgentBackend) and run from `loom agent run NAME "question"`.

Why the model cannot call an undeclared tool: the calls it may make are decoded under a grammar built
from the agent's declared tools (loom.model.tools), so a tool name outside that list cannot be
produced, whatever a knowledge-base chunk or a tool result says; and calls are dispatched only
through the agent's own table of those tools. A tool that fails, hangs past the time limit or returns
something unusable becomes an error result the model reads on its next step; the loop never raises
for a tool's fault."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml

from loom import atomic, home, registry
from loom.apps.agent import connect, offer, plan
from loom.apps.agent.tools import BUILTINS
from loom.backends.base import Backend, Chunk, Info, Request, Sampling, check_messages, collect
from loom.config import AgentConfig
from loom.errors import InputError, LoomError, NotFoundError
from loom.model.tools import Tool, ToolSet

log = logging.getLogger(__name__)
PREFIX = "agent:"
_RESULT_CHARS = 2000  # a tool result longer than this is cut for the model: after three 4,000-character results qwen2.5-1.5b lost the question
_STOPPED = {"en": "I could not put an answer together; here is what the tools found.",
            "zh": "我没能整理出答案，以下是工具找到的信息。"}


@dataclass
class Step:
    tool: str
    arguments: dict | str
    result: str
    seconds: float
    error: bool = False


@dataclass
class Answer:
    text: str
    steps: list[Step] = field(default_factory=list)
    stopped: str = ""  # why the loop ended before the model answered ("max_steps", "max_seconds"), or ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


def save(name: str, cfg: AgentConfig) -> None:
    check_tools(cfg.tools)
    atomic.write_text(home.agent_path(name), yaml.safe_dump(cfg.model_dump(), allow_unicode=True, sort_keys=False))


def load(name: str) -> AgentConfig:
    path = home.agent_path(name)
    if not path.is_file():
        raise NotFoundError(f"no agent named {name!r}", "create one with `loom agent create NAME --tools kb_search ...`; "
                            "`loom agent list` shows them")
    cfg = AgentConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    check_tools(cfg.tools)
    return cfg


def names() -> list[str]:
    folder = home.agents_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def check_tools(tools: list[str]) -> None:
    """Every name is a built-in, an HTTP tool or an MCP server's tool (SERVER__TOOL, SERVER__*) declared
    in agent-tools.yaml: an agent can reach nothing the operator did not declare."""
    outside = connect.load()
    for name in tools:
        mcp = connect.split_mcp(name)
        if name in BUILTINS or name in outside.http:
            continue
        if mcp and mcp[0] in outside.mcp and (mcp[1] == "*" or outside.mcp[mcp[0]].tools is None or mcp[1] in outside.mcp[mcp[0]].tools):
            continue
        declared_names = [*outside.http, *(f"{s}{connect.MCP_SEPARATOR}*" for s in outside.mcp)]
        raise InputError(f"unknown tool {name!r}", f"built-in tools: {', '.join(BUILTINS)}"
                         + (f"; declared: {', '.join(declared_names)}" if declared_names else
                            "; HTTP tools and MCP servers are declared with `loom agent connect`"))


def available_tools(show_urls: bool = True) -> list[dict]:
    """Every tool an agent may list, as {name, kind, description}: built-in, declared HTTP tools, and
    each MCP server's tools (listed live, so this may connect to the servers: call it off the event
    loop). One listing for `loom agent tools` and GET /v1/agents/tools. show_urls=False leaves the
    declared method and URL out of HTTP tools' descriptions (for callers who are not the operator)."""
    outside = connect.load()
    rows = [{"name": n, "kind": "built-in", "description": (f.__doc__ or "").strip().split("\n")[0]} for n, f in BUILTINS.items()]
    rows += [{"name": n, "kind": "http", "description": f"{t.method} {t.url}: {t.description}" if show_urls else t.description}
             for n, t in outside.http.items()]
    for server, conn in outside.mcp.items():
        try:
            rows += [{"name": f"{server}{connect.MCP_SEPARATOR}{t.name}", "kind": "mcp", "description": (t.description or "").strip()[:200]}
                     for t in connect.mcp_tools(server, conn)]
        except LoomError as e:  # one server down must not hide the other tools
            rows.append({"name": f"{server}{connect.MCP_SEPARATOR}*", "kind": "mcp", "description": f"unavailable: {e.message}"})
    return rows


def allowed(name: str, cfg: AgentConfig) -> bool:
    mcp = connect.split_mcp(name)
    return name in cfg.tools or bool(mcp and f"{mcp[0]}{connect.MCP_SEPARATOR}*" in cfg.tools)


def declared(cfg: AgentConfig) -> list[Tool]:
    """The agent's tools as chat-request tools, their JSON Schemas read from the functions' signatures.
    A parameter that names a knowledge base, graph or recommender is held to the names that exist
    (an enum, so the grammar lets a small model write only a real one: qwen2.5-0.5b otherwise took
    words of the tool's description for a KB name)."""
    from mcp.server.mcpserver.tools.base import Tool as MCPTool

    existing = _existing_names()
    outside = connect.load()
    out = []
    for name in cfg.tools:
        if name not in BUILTINS:
            out += _outside_tools(name, outside)
            continue
        schema = MCPTool.from_function(BUILTINS[name]).parameters
        properties = {key: {k: v for k, v in spec.items() if k != "title"} for key, spec in schema.get("properties", {}).items()}
        for key, spec in properties.items():
            kind = _NAMED.get((name, key))
            if kind and existing.get(kind):
                spec["enum"] = existing[kind]
            elif spec.get("type") == "string":  # a bound the grammar enforces: no argument runs to the token limit
                spec["maxLength"] = _STRING_LIMITS.get(key, 120)
            elif spec.get("type") == "integer" and key in _INT_BOUNDS:
                spec["minimum"], spec["maximum"] = _INT_BOUNDS[key]
        summary = (BUILTINS[name].__doc__ or "").strip().split("\n")[0]
        if name == "kb_search" and existing.get("kb"):  # what each KB covers, so the model knows when to search
            summary += " Knowledge bases: " + "; ".join(_kb_topics(kb) for kb in existing["kb"][:5])
        out.append(Tool(name, summary,
                        {"type": "object", "properties": properties, "required": schema.get("required", []),
                         "additionalProperties": False}))
    return out


def _kb_topics(name: str, limit: int = 300) -> str:
    """`shop: FAQ (退货政策是什么？; 退款多久到账？ ...); Lumio Robot Vacuum R3 User Guide; ...`: each
    document's first heading (or file name) and a FAQ's first questions, cut at `limit` characters."""
    from pathlib import Path

    from loom.apps.support.store import KnowledgeBase

    kb = KnowledgeBase(name)
    with kb.connect() as db:
        firsts = db.execute("SELECT d.source, c.title FROM documents d JOIN chunks c ON c.doc_id = d.id AND c.ordinal = 0 "
                            "ORDER BY d.source").fetchall()
        questions = [r[0] for r in db.execute("SELECT question FROM faqs ORDER BY id LIMIT 4").fetchall()]
    topics = []
    for source, title in firsts:
        label = title.split(" > ")[0] if title and title != "FAQ" else Path(source).stem
        topics.append(f"FAQ ({'; '.join(questions)} ...)" if title == "FAQ" and questions else label)
    text = f"{name}: " + "; ".join(dict.fromkeys(topics))
    return text if len(text) <= limit else text[:limit] + "..."


def _outside_tools(name: str, outside) -> list[Tool]:
    """An HTTP tool, or an MCP server's tools (listed from the server; one that cannot be reached offers none)."""
    if name in outside.http:
        spec = outside.http[name]
        return [Tool(name, spec.description, _bounded(spec.parameters))]
    server, tool = connect.split_mcp(name)
    conn = outside.mcp[server]
    try:
        listed = connect.mcp_tools(server, conn)
    except LoomError as e:
        log.warning("agent tools of MCP server %s are unavailable: %s", server, e.message)
        return []
    return [Tool(f"{server}{connect.MCP_SEPARATOR}{t.name}", (t.description or t.name).strip().split("\n")[0][:500],
                 _bounded(t.input_schema)) for t in listed if tool in ("*", t.name)]


def _bounded(schema: dict) -> dict:
    """An outside tool's argument schema for the grammar: an object, titles dropped, strings bounded."""
    properties = {key: {k: v for k, v in spec.items() if k != "title"} for key, spec in (schema.get("properties") or {}).items()}
    for key, spec in properties.items():
        if spec.get("type") == "string" and "enum" not in spec:
            spec.setdefault("maxLength", _STRING_LIMITS.get(key, 120))
    return {"type": "object", "properties": properties, "required": list(schema.get("required") or []),
            "additionalProperties": False}


_STRING_LIMITS = {"text": 4000, "expression": 200}  # characters; other strings (queries, entities, ids): 120
_INT_BOUNDS = {"k": (1, 5), "hops": (1, 2), "sentences": (1, 20)}  # k: five passages fit the result limit
_NAMED = {("kb_search", "kb"): "kb", ("kg_neighbors", "graph"): "kg", ("kg_path", "graph"): "kg",
          ("recommend_for_user", "model"): "recommender", ("similar_items", "model"): "recommender"}


def _existing_names() -> dict[str, list[str]]:
    from loom.apps.kg.store import list_names as graphs
    from loom.apps.recommend.store import list_names as recommenders
    from loom.apps.support.store import list_kbs

    return {"kb": list_kbs(), "kg": graphs(), "recommender": recommenders()}


def run(cfg: AgentConfig, messages: list[dict], backend: Backend | None = None) -> Iterator[Step | Answer]:
    """The loop, as events: each tool call as it finishes (Step), then the Answer."""
    from loom import catalog
    from loom.text import language

    backend = backend or registry.open_backend(catalog.chat_model_for(cfg.model, "an agent"))
    started, steps, used = time.monotonic(), [], [0, 0]
    talk = ([{"role": "system", "content": cfg.instructions}] if cfg.instructions else []) + list(messages)
    every, outside = declared(cfg), connect.load()  # agent-tools.yaml read once per question, not per turn or call
    question = messages[-1].get("content") if isinstance(messages[-1].get("content"), str) else ""
    lang = "zh" if language(question) == "zh" else "en"
    asks = plan.parts(backend, question, lang, used) if cfg.plan and every and question else []
    asks = asks if len(asks) > 1 else []  # one thing asked: the plain loop
    for turn in range(cfg.max_steps):
        late = time.monotonic() - started > cfg.max_seconds
        view = talk + [plan.focus(asks[turn], lang)] if turn < len(asks) else talk  # this turn's part, not kept
        tools = offer.offered(every, view, outside)
        required = turn < len(asks) or (turn == 0 and cfg.first_step == "required")
        choice = "none" if late or not tools else ("required" if required else "auto")
        reply = collect(backend.stream(Request(Sampling(max_tokens=cfg.max_tokens, temperature=0.0), messages=view,
                                               tools=ToolSet(tools, choice, parallel=False, note=plan.go_on(lang, question)) if tools else None)))
        used[0] += reply.prompt_tokens
        used[1] += reply.completion_tokens
        if not reply.tool_calls or choice == "none":
            text = reply.text.strip()
            if _unusable(text, messages[-1].get("content") or ""):
                yield Answer(_from_results(steps, lang), steps, "no_answer", *used)
            else:
                yield Answer(text, steps, "max_seconds" if late else "", *used)
            return
        done_before = {(s.tool, json.dumps(s.arguments, sort_keys=True, ensure_ascii=False)) for s in steps}
        if all((c["name"], _canonical(c["arguments"])) in done_before for c in reply.tool_calls):
            yield Answer(_from_results(steps, lang), steps, "repeated_call", *used)  # it would loop: answer from what it has
            return
        calls = [{"id": c["id"] or f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                  "function": {"name": c["name"], "arguments": c["arguments"]}} for c in reply.tool_calls]
        talk.append({"role": "assistant", "content": reply.text or "", "tool_calls": calls})
        for call in calls:
            step = call_tool(call["function"]["name"], call["function"]["arguments"], cfg, started, outside)
            steps.append(step)
            yield step
            talk.append({"role": "tool", "tool_call_id": call["id"], "content": step.result})
    yield Answer(_from_results(steps, lang), steps, "max_steps", *used)


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return arguments


def _unusable(text: str, question: str) -> bool:
    """A reply that answers nothing: empty, the question said back, or a tool call written as text
    (a weak model after a tool result: qwen2.5-0.5b does all three)."""
    if not text or text == question.strip():
        return True
    try:
        shaped = json.loads(text)
    except ValueError:
        return False
    return isinstance(shaped, dict) and "name" in shaped and "arguments" in shaped


def _from_results(steps: list[Step], lang: str) -> str:
    """When the model gives no answer: say so, and give what the tools found (passages' texts, or the
    last successful result), so the user still sees the evidence."""
    found = []
    for step in steps:
        if step.error:
            continue
        try:
            result = json.loads(step.result)
        except ValueError:
            continue
        if isinstance(result, dict) and result.get("hits"):
            found += [h["text"] for h in result["hits"][:2]]
        elif isinstance(result, dict):
            found.append(json.dumps(result, ensure_ascii=False))
    lines = list(dict.fromkeys(found))[:4]
    return _STOPPED[lang] + ("\n\n" + "\n".join(f"- {line}" for line in lines) if lines else "")


def call_tool(name: str, arguments: str, cfg: AgentConfig, started: float, outside=None) -> Step:
    """One call, never raising: a bad name, bad arguments, a failing or slow tool all become an error result."""
    begun = time.monotonic()
    try:
        args = json.loads(arguments or "{}")
    except ValueError as e:  # cut off at the token limit, or not JSON
        return _failed(name, arguments, f"bad arguments: {e}", begun)
    try:
        if not allowed(name, cfg):  # cannot be produced under the grammar; refused here too
            raise InputError(f"tool {name!r} is not one of this agent's tools", f"use one of: {', '.join(cfg.tools)}")
        if not isinstance(args, dict):
            raise InputError("arguments must be a JSON object", "send the arguments as an object")
        if time.monotonic() - started > cfg.max_seconds:
            raise InputError("the time limit for this question is spent", "answer from what you have")
        result = json.dumps(_dispatch(name, args, outside), ensure_ascii=False, default=str)
    except LoomError as e:
        return _failed(name, args, e.message, begun, e.hint)
    except TypeError as e:  # unknown or missing argument names
        return _failed(name, args, f"bad arguments: {e}", begun)
    except Exception as e:  # noqa: BLE001 - a tool's own fault is the model's to hear about, not a 500
        return _failed(name, args, f"the tool failed ({type(e).__name__})", begun)
    if len(result) > _RESULT_CHARS:
        result = result[:_RESULT_CHARS] + " …(cut)"
    return Step(name, args, result, round(time.monotonic() - begun, 3))


def _dispatch(name: str, args: dict, outside=None):
    if name in BUILTINS:
        return BUILTINS[name](**args)
    outside = outside or connect.load()
    if name in outside.http:
        return connect.call_http(name, outside.http[name], args)
    server, tool = connect.split_mcp(name)
    return connect.call_mcp(server, connect.require_mcp(outside, server), tool, args)


def step_dict(step: Step) -> dict:
    return {"tool": step.tool, "arguments": step.arguments, "result": step.result, "seconds": step.seconds, "error": step.error}


def _failed(name: str, arguments, error: str, begun: float, fix: str = "") -> Step:
    body = {"error": error} | ({"fix": fix} if fix else {})
    return Step(name, arguments, json.dumps(body, ensure_ascii=False), round(time.monotonic() - begun, 3), error=True)


class AgentBackend(Backend):
    """`agent:NAME` as a chat model: the answer streams as content; the steps travel in the final
    chunk's `extra` (the choice's `loom` field: tool, arguments, result, seconds)."""

    def __init__(self, name: str, shared: registry.Shared | None = None) -> None:
        """shared: a server's loaded models and its `apps.agent` model (see registry.Shared)."""
        from loom import catalog

        self.cfg = load(name)
        self.name = PREFIX + name
        model = catalog.chat_model_for(self.cfg.model or (shared.app_models.get("agent") if shared else None), "an agent")
        self.model = shared.open(model) if shared else registry.open_backend(model)
        self._owns_model = shared is None

    def info(self) -> Info:
        return Info(self.name, "agent", ["chat"], None, f"agent over {', '.join(self.cfg.tools) or 'no tools'}")

    def stream(self, request: Request) -> Iterator[Chunk]:
        if request.messages is None:
            raise InputError(f"{self.name} answers chat messages", "use /v1/chat/completions")
        check_messages(request.messages)
        return self._events(request.messages)

    def _events(self, messages: list[dict]) -> Iterator[Chunk]:
        """Each step as it finishes (an empty chunk whose extra is {"step": ...}: a streamed reply's `loom`
        field), then the answer, then the final chunk with every step."""
        answer = None
        for event in run(self.cfg, messages, self.model):
            if isinstance(event, Answer):
                answer = event
            else:
                yield Chunk("", extra={"step": step_dict(event)})
        yield Chunk(answer.text)
        yield Chunk("", "stop", answer.prompt_tokens, answer.completion_tokens,
                    {"steps": [step_dict(s) for s in answer.steps], "stopped": answer.stopped})

    def close(self) -> None:
        if self._owns_model:  # a server's shared model stays loaded
            self.model.close()


registry.register_prefix(PREFIX, AgentBackend)  # `agent:NAME` opens this app's backend
