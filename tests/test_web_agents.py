"""The Agents page (issue 33.6) in headless Chromium, and the /v1/agents routes it calls: define an
agent in the form, see it listed, ask it and watch its steps arrive, delete it; the routes' checks
(tools only from what is declared, names never paths, admin keys for changes, per-key listing).
Uses test_web's fixtures (a live server over tiny models, and a browser for this module)."""

from __future__ import annotations

import shutil

import httpx

from conftest import LiveServer, home_at, loom_cli
from test_web import ARTIFACTS, POLICY, browser, page, pytestmark, site  # noqa: F401  (fixtures; browser marker)

ASKED = ("document.querySelectorAll('#agent-steps li').length > 0 && "
         "document.getElementById('agent-answer').textContent.trim().length > 0 && "
         "!document.getElementById('agent-ask').disabled")


def _shop(site) -> None:
    """A knowledge base for kb_search to find something in (the grammar holds the call to its name)."""
    if httpx.get(site.url + "/v1/kb/shop", timeout=30).status_code == 404:
        httpx.post(site.url + "/v1/kb", json={"name": "shop"}, timeout=120).raise_for_status()
        httpx.post(site.url + "/v1/kb/shop/documents", json={"documents": [{"source": "policy.md", "text": POLICY}]},
                   timeout=120).raise_for_status()


def test_define_ask_and_delete_an_agent_on_the_page(page, site):
    _shop(site)
    page.set_viewport_size({"width": 1280, "height": 860})
    page.click("[data-tab=agents]")
    page.wait_for_selector("#agent-tool-list input[value=kb_search]")
    assert "built-in" in page.text_content("#agent-tool-list")
    models = page.eval_on_selector_all("#agent-model option", "os => os.map((o) => o.value)")
    assert "slow" in models and not any(m.startswith(("agent:", "support:")) for m in models)
    page.fill("#agent-name", "webdesk")
    page.select_option("#agent-model", "slow")
    page.fill("#agent-instructions", "Answer from the shop's knowledge base.")
    page.check("#agent-tool-list input[value=kb_search]")
    page.check("#agent-tool-list input[value=calculator]")
    page.select_option("#agent-first-step", "required")
    page.fill("#agent-max-steps", "2")
    # 'slow' never stops early, so a turn costs its whole budget; 160 tokens hold the call's name (its
    # random arguments may be cut: then the step is an error result, shown as one)
    page.fill("#agent-max-tokens", "160")
    page.click("#agent-save")
    page.wait_for_selector("#agents-list li[data-name=webdesk]")
    assert "slow" in page.text_content("#agents-list li[data-name=webdesk]") and page.text_content("#error") == ""
    saved = httpx.get(site.url + "/v1/agents", timeout=10).json()["data"]
    assert {"name": "webdesk", "model": "slow", "tools": ["kb_search", "calculator"], "first_step": "required",
            "max_steps": 2, "max_tokens": 160}.items() <= next(a for a in saved if a["name"] == "webdesk").items()

    page.fill("#agent-question", "How long do I have to return something?")
    page.click("#agent-ask")
    page.wait_for_function(ASKED, timeout=180_000)
    tools = page.eval_on_selector_all("#agent-steps .tool-name", "els => els.map((e) => e.textContent)")
    assert tools and set(tools) <= {"kb_search", "calculator"}
    assert page.text_content("#agent-steps li .tool-args").strip() and page.locator("#agent-steps details pre").count() == len(tools)
    assert "step" in page.text_content("#agent-meta") and page.text_content("#error") == ""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # the model's long answer wraps
    page.screenshot(path=str(ARTIFACTS / "agents.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling on a phone
    page.click("#lang")
    assert page.text_content("[data-tab=agents]") == "智能体" and page.text_content("#agent-save") == "保存"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "agents-zh-phone.png"), full_page=True)
    page.click("#lang")

    page.click("#agent-delete")
    page.wait_for_function("!document.querySelector('#agents-list li[data-name=webdesk]')")
    assert "Deleted webdesk" in page.text_content("#agent-status")
    assert not (site.home / "agents" / "webdesk.yaml").exists()


def test_agent_routes_check_what_they_are_given(site):
    agents = site.url + "/v1/agents"
    assert httpx.get(agents, timeout=10).json()["object"] == "list"
    tools = httpx.get(agents + "/tools", timeout=30).json()["data"]
    assert {"name": "kb_search", "kind": "built-in"}.items() <= next(t for t in tools if t["name"] == "kb_search").items()

    unknown = httpx.put(agents + "/quick", json={"tools": ["kb_search", "run_shell"]}, timeout=10)
    assert unknown.status_code == 400 and "run_shell" in unknown.json()["error"]["message"]
    extra = httpx.put(agents + "/quick", json={"tools": ["calculator"], "url": "http://evil"}, timeout=10)
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "url"
    path_model = httpx.put(agents + "/quick", json={"tools": ["calculator"], "model": "/etc/passwd"}, timeout=10)
    assert path_model.status_code == 400 and path_model.json()["error"]["param"] == "model"
    before = sorted(p for p in site.home.rglob("*") if p.suffix == ".yaml")
    for bad in ("..%2Fx", "a%20b", "..%2F..%2Fmodels"):
        assert httpx.put(f"{agents}/{bad}", json={"tools": ["calculator"]}, timeout=10).status_code in (400, 404, 405)
        assert httpx.delete(f"{agents}/{bad}", timeout=10).status_code in (400, 404, 405)
    assert sorted(p for p in site.home.rglob("*") if p.suffix == ".yaml") == before  # nothing written anywhere
    assert httpx.delete(agents + "/ghost", timeout=10).status_code == 404

    # a saved change is what the next question uses (the server had the agent open)
    ask = {"model": "agent:quick", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    for tool in ("kb_search", "calculator"):
        saved = httpx.put(agents + "/quick", json={"model": "slow", "tools": [tool], "first_step": "required", "max_steps": 1,
                                                   "max_tokens": 160}, timeout=10)
        assert saved.status_code == 200 and saved.json()["tools"] == [tool]
        reply = httpx.post(site.url + "/v1/chat/completions", json=ask, timeout=120).json()
        assert reply["choices"][0]["loom"]["steps"][0]["tool"] == tool, reply
    assert httpx.delete(agents + "/quick", timeout=10).json() == {"name": "quick", "deleted": True}


def test_agent_routes_with_keys(tmp_path, site):
    """Once keys exist: changes need an admin key, and a key limited to some agents lists only those.
    Its own server: keys, once made, apply to every request to that server."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(site.home / "models.json", home / "models.json")
    with home_at(home):
        from loom.serve.auth import KeyStore

        loom_cli("agent", "create", "desk", "--model", "slow", "--tools", "calculator")
        _, admin = KeyStore().create("boss", admin=True)
        _, user = KeyStore().create("user")
        _, barred = KeyStore().create("barred", agents=[])
    with LiveServer(home) as server:
        agents = server.url + "/v1/agents"

        def as_key(key: str) -> dict:
            return {"Authorization": f"Bearer {key}"}

        assert httpx.get(agents, timeout=10).status_code == 401
        assert [a["name"] for a in httpx.get(agents, headers=as_key(user), timeout=10).json()["data"]] == ["desk"]
        assert httpx.get(agents, headers=as_key(barred), timeout=10).json()["data"] == []
        body = {"tools": ["calculator"], "max_steps": 1}
        for method in ("PUT", "DELETE"):
            refused = httpx.request(method, agents + "/desk", json=body if method == "PUT" else None, headers=as_key(user), timeout=10)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
        assert httpx.put(agents + "/desk", json=body, headers=as_key(admin), timeout=10).json()["max_steps"] == 1
        assert httpx.delete(agents + "/desk", headers=as_key(admin), timeout=10).status_code == 200
        assert not (home / "agents" / "desk.yaml").exists()
