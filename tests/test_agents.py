"""Agents (issue 33, item 1 and 7): a chat model calling Loom's built-in tools in a loop, from the CLI
and as the OpenAI model `agent:NAME`. The default suite runs the tiny test model, whose words are
noise but whose calls are held to the declared tools by the grammar: the loop, the steps, the error
results and the limits are what is checked here (docs/agents.md)."""

from __future__ import annotations

import json
import time

import pytest

from conftest import LiveServer, copy_home, home_at, loom_cli


@pytest.fixture
def home(api_home, tmp_path):
    """api_home's knowledge base, graph, recommender and classifier, and an agent over them."""
    home = copy_home(api_home, tmp_path / "home")
    with home_at(home):
        loom_cli("agent", "create", "desk", "--tools", "kb_search,calculator", "--model", "slow", "--first-step", "required",
                 "--max-steps", "3", "--max-tokens", "2048", "--instructions", "Answer from the shop's knowledge base.")
    return home


def test_an_agent_searches_first_and_reports_each_step(home):
    with home_at(home):
        listed = json.loads(loom_cli("agent", "list", "--json").stdout)
        assert listed == [{"name": "desk", "model": "slow", "tools": ["kb_search", "calculator"]}]
        out = json.loads(loom_cli("agent", "run", "desk", "How long do I have to return something?", "--json").stdout)
    assert out["answer"].strip() and 1 <= len(out["steps"]) <= 3, out
    first = out["steps"][0]  # greedy decoding: the same call every run
    assert first["tool"] == "kb_search" and not first["error"] and first["seconds"] >= 0, first
    # the only knowledge base the grammar lets it name; bounded arguments, so the call parses
    assert first["arguments"]["kb"] == "shop" and len(first["arguments"]["query"]) <= 120 and "30 days" in first["result"]
    for step in out["steps"]:
        assert step["tool"] in ("kb_search", "calculator")  # nothing undeclared can be called
        json.loads(step["result"])  # every result, error or not, is JSON the model can read


def test_agent_models_answer_through_the_openai_client_with_their_steps(home):
    import openai

    with LiveServer(home) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="agent:desk", messages=[{"role": "user", "content": "What is 6 * 7?"}])
        steps = reply.choices[0].model_extra["loom"]["steps"]
        assert reply.choices[0].message.content.strip() and steps and steps[0]["tool"] in ("kb_search", "calculator")
        with pytest.raises(openai.NotFoundError, match="no agent named 'ghost'"):
            client.chat.completions.create(model="agent:ghost", messages=[{"role": "user", "content": "hi"}])


def test_agent_definitions_are_checked_and_tool_faults_become_results(home):
    from loom.apps.agent import agent
    from loom.config import AgentConfig

    with home_at(home):
        bad = loom_cli("agent", "create", "shell", "--tools", "run_shell", check=False)
        assert bad.returncode == 2 and "unknown tool 'run_shell'" in bad.stderr
        cfg = agent.load("desk")
        assert agent.call_tool("calculator", '{"expression": "1/0"}', cfg, time.monotonic()).error  # division by zero
        assert "not one of this agent's tools" in agent.call_tool("kg_path", '{"graph": "shop"}', cfg, time.monotonic()).result
        assert "bad arguments" in agent.call_tool("calculator", '{"expr": "1+1"}', cfg, time.monotonic()).result
        assert json.loads(agent.call_tool("calculator", '{"expression": "6 * 7"}', cfg, time.monotonic()).result)["value"] == 42
        slow = AgentConfig(tools=["calculator"], max_seconds=0.001)
        assert "time limit" in agent.call_tool("calculator", '{"expression": "1+1"}', slow, time.monotonic() - 1).result
        schema = {t.name: t.parameters for t in agent.declared(cfg)}
        assert schema["kb_search"]["properties"]["kb"]["enum"] == ["shop"] and schema["kb_search"]["required"] == ["kb", "query"]
