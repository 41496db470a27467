"""The authorisation matrix: every route, on an open server and on a keyed one with no key, a revoked
key, a normal key and an admin key; one row per route, the expected status of every cell written out.

Admin-only: /v1/keys (list, create, revoke), defining and deleting agents (PUT/DELETE /v1/agents/NAME), /v1/train/jobs (training spends the server's compute),
DELETE /v1/kb/NAME (a whole knowledge base) and server-side imports (`paths`, which also need --kb-import-dir and are refused on a server without keys)."""

from __future__ import annotations

import importlib.util

import httpx
import pytest

from conftest import REPO, LiveServer, copy_home

CHAT = {"model": "nano", "messages": [{"role": "user", "content": "the river"}], "max_tokens": 2}
PUBLIC = {"open": 200, "none": 200, "revoked": 200, "user": 200, "admin": 200}
USER = {"open": 200, "none": 401, "revoked": 401, "user": 200, "admin": 200}
ADMIN = {"open": 200, "none": 401, "revoked": 401, "user": 403, "admin": 200}
MISSING = {"open": 404, "none": 401, "revoked": 401, "user": 403, "admin": 404}  # admin-only, and the name is not there
IMPORT = {"open": 403, "none": 401, "revoked": 401, "user": 403, "admin": 200}  # keys required, admin only
SCANLESS = {"open": 404, "none": 401, "revoked": 401, "user": 404, "admin": 404}  # allowed, and there is nothing to show

# (method, path, request kwargs, expected status per cell). {cell} makes names unique per cell.
# allowed, then refused: whisper-1 is the English-only tiny.en here, which cannot translate (and speech
# output is an extra that the default install leaves out)
ENGLISH_ONLY = {cell: 400 if status == 200 else status for cell, status in USER.items()}
CLIP = (REPO / "tests" / "assets" / "audio" / "en_short.ogg").read_bytes()  # speech routes transcribe it
ROUTES = [
    ("GET", "/health", {}, PUBLIC),
    ("GET", "/", {}, PUBLIC),
    ("GET", "/ui/app.js", {}, PUBLIC),
    ("GET", "/openapi.json", {}, USER),  # every route and field: keyed like the API (api_docs: keyed)
    ("GET", "/docs", {}, USER),
    ("GET", "/metrics", {}, USER),
    ("GET", "/v1/models", {}, USER),
    ("POST", "/v1/chat/completions", {"json": CHAT}, USER),
    ("POST", "/v1/completions", {"json": {"model": "nano", "prompt": "the river", "max_tokens": 2}}, USER),
    ("POST", "/v1/embeddings", {"json": {"model": "minilm", "input": "hello"}}, USER),
    ("POST", "/v1/classify", {"json": {"model": "reviews", "input": "lovely room"}}, USER),
    ("GET", "/v1/kb", {}, USER),
    ("POST", "/v1/kb", {"json": {"name": "kb-{cell}", "encoder": "minilm"}}, USER),
    ("GET", "/v1/kb/shop", {}, USER),
    ("GET", "/v1/kb/shop/pages", {"params": {"source": "hours.md", "page": 1}}, SCANLESS),  # a typed file: no page image
    ("POST", "/v1/kb/shop/search", {"json": {"query": "returns", "k": 1}}, USER),
    ("POST", "/v1/kb/shop/documents", {"json": {"documents": [{"source": "{cell}.md", "text": "Gift cards never expire."}]}}, USER),
    ("POST", "/v1/kb/shop/files", {"files": {"files": ("up-{cell}.txt", b"Parcels ship daily.")}}, USER),
    ("POST", "/v1/kb/shop/documents", {"json": {"paths": ["hours.md"]}}, IMPORT),
    ("GET", "/v1/kb/shop/chunks", {"params": {"source": "policy.md"}}, USER),
    ("GET", "/v1/kb/shop/handoffs", {}, USER),
    ("DELETE", "/v1/kb/shop/documents", {"params": {"source": "gone-{cell}.md"}}, USER),
    ("DELETE", "/v1/kb/doomed-{cell}", {}, ADMIN),
    ("GET", "/v1/runs", {}, USER),
    ("GET", "/v1/runs/nano/metrics", {}, USER),
    ("GET", "/v1/evals", {}, USER),
    ("GET", "/v1/evals/demo", {}, USER),
    ("GET", "/v1/evals/demo/confusion.png", {}, USER),
    ("POST", "/v1/summarize", {"json": {"input": "One. Two is here. Three is last.", "sentences": 1}}, USER),
    ("POST", "/v1/translate", {"json": {"input": "hello", "to": "zh", "model": "slow"}}, USER),
    ("POST", "/v1/write", {"json": {"kind": "poem", "topic": "rain", "model": "nano", "retries": 0}}, USER),
    ("POST", "/v1/report", {"json": {"data": [{"city": "a", "sales": 1}, {"city": "b", "sales": 3}]}}, USER),
    ("POST", "/v1/recommend", {"json": {"model": "shop", "user": "u1", "k": 2}}, USER),
    ("POST", "/v1/recommend/similar", {"json": {"model": "shop", "item": "i1", "k": 2}}, USER),
    ("GET", "/v1/recommenders", {}, USER),
    ("GET", "/v1/recommenders/shop", {}, USER),
    ("POST", "/v1/audio/transcriptions", {"data": {"model": "whisper-1"}, "files": {"file": ("clip.ogg", CLIP)}}, USER),
    ("POST", "/v1/audio/translations", {"data": {"model": "whisper-1"}, "files": {"file": ("clip.ogg", CLIP)}}, ENGLISH_ONLY),
    ("POST", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "Hello.", "response_format": "wav"}},
     USER if importlib.util.find_spec("piper") else ENGLISH_ONLY),  # 400 without the opt-in speech extra
    ("GET", "/v1/kg", {}, USER),
    ("GET", "/v1/kg/shop", {}, USER),
    ("POST", "/v1/kg/shop/build", {"json": {}}, USER),
    ("POST", "/v1/kg/shop/documents", {"json": {"documents": [{"source": "kg-{cell}.txt", "text": "Rome is the capital of Italy."}]}}, USER),
    ("DELETE", "/v1/kg/shop/documents", {"params": {"source": "kg-gone-{cell}.txt"}}, USER),
    ("GET", "/v1/kg/shop/entities/Paris", {}, USER),
    ("GET", "/v1/kg/shop/neighbors", {"params": {"entity": "Paris"}}, USER),
    ("GET", "/v1/kg/shop/path", {"params": {"a": "Paris", "b": "France"}}, USER),
    ("GET", "/v1/kg/shop/search", {"params": {"q": "par"}}, USER),
    ("DELETE", "/v1/kg/doomed-{cell}", {}, ADMIN),
    ("POST", "/v1/train/jobs", {"data": {"kind": "classify", "name": "job-{cell}", "base": "tfidf"},
                                "files": {"data": ("reviews.csv", b"text,label\n" + b"great room,pos\nawful room,neg\n" * 10)}}, ADMIN),
    ("GET", "/v1/train/jobs", {}, ADMIN),
    ("GET", "/v1/train/jobs/job-{cell}", {}, ADMIN),
    ("POST", "/v1/train/jobs/ghost/stop", {}, MISSING),
    ("POST", "/v1/train/jobs/ghost/eval", {}, MISSING),
    ("GET", "/v1/agents", {}, USER),
    ("GET", "/v1/agents/tools", {}, USER),
    ("PUT", "/v1/agents/agent-{cell}", {"json": {"tools": ["calculator"]}}, ADMIN),  # an agent runs tools on the server's data
    ("DELETE", "/v1/agents/ghost", {}, MISSING),
    ("GET", "/v1/keys", {}, ADMIN),
    ("DELETE", "/v1/keys/{victim}", {}, ADMIN),
    ("POST", "/v1/keys", {"json": {"name": "made-{cell}"}}, ADMIN),  # last: on an open server it creates the first key
]


def _fill(value, names: dict):
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(v, names) for v in value)
    return value


def _prepare(server_url, admin_headers, cell: str, store, keyed: bool) -> dict:
    """What the destructive rows act on, made fresh for each cell (a key to revoke only on the keyed
    server: on the open one a key would close the server)."""
    httpx.post(server_url + "/v1/kb", json={"name": f"doomed-{cell}", "encoder": "minilm"}, headers=admin_headers).raise_for_status()
    httpx.post(server_url + "/v1/kb/shop/documents", headers=admin_headers, timeout=60,
               json={"documents": [{"source": f"gone-{cell}.md", "text": "To be deleted."}]}).raise_for_status()
    httpx.post(server_url + "/v1/kg/doomed-" + cell + "/documents", headers=admin_headers, timeout=60,
               json={"documents": [{"source": "x.txt", "text": "Oslo is the capital of Norway."}]}).raise_for_status()
    httpx.post(server_url + "/v1/kg/shop/documents", headers=admin_headers, timeout=60,
               json={"documents": [{"source": f"kg-gone-{cell}.txt", "text": "Lima is the capital of Peru."}]}).raise_for_status()
    victim = store.create(f"victim-{cell}")[0].id if keyed else "no-such-key"
    return {"cell": cell, "victim": victim}


@pytest.fixture(scope="module")
def servers(api_home, tmp_path_factory):
    from loom.serve.auth import KeyStore

    made = {}
    for kind in ("open", "keyed"):
        home = copy_home(api_home, tmp_path_factory.mktemp(kind) / "home")
        imports = home.parent / "imports"
        imports.mkdir()
        (imports / "hours.md").write_text("# Hours\n\nWe open at nine.\n", encoding="utf-8")
        store = KeyStore(home / "loom.db")
        keys = {}
        if kind == "keyed":
            keys = {"admin": store.create("root", admin=True)[1], "user": store.create("user")[1]}
            keys["revoked"] = store.create("gone")[1]
            store.revoke("gone")
        made[kind] = (LiveServer(home, "--preload", "nano", "--kb-import-dir", str(imports)), store, keys)
    yield made
    for server, _, _ in made.values():
        server.stop()


def test_every_route_under_every_key(servers):
    cells = [("open", "open", None), ("keyed", "none", None), ("keyed", "revoked", "revoked"),
             ("keyed", "user", "user"), ("keyed", "admin", "admin")]
    failures, checked = [], 0
    for kind, cell, key_name in cells:
        server, store, keys = servers[kind]
        admin_headers = {"Authorization": f"Bearer {keys['admin']}"} if keys else {}
        headers = {"Authorization": f"Bearer {keys[key_name]}"} if key_name else {}
        names = _prepare(server.url, admin_headers, cell, store, keyed=kind == "keyed")
        for method, path, kwargs, expected in ROUTES:
            want = expected[cell]
            if kind == "open" and path == "/v1/keys/{victim}":
                want = 404  # allowed (200 on a real key), but the open server has no key left to revoke
            r = httpx.request(method, server.url + _fill(path, names), headers=headers, timeout=120, **_fill(kwargs, names))
            checked += 1
            if r.status_code != want:
                failures.append(f"{cell:8} {method} {path}: {r.status_code}, expected {want}: {r.text[:160]}")
            elif r.status_code >= 400:
                assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert not failures, "\n".join(failures)
    assert checked == len(ROUTES) * len(cells)


def test_the_matrix_covers_every_route(servers):
    server, _, keys = servers["keyed"]  # the open server may hold a key by now (the matrix creates one)
    schema = httpx.get(server.url + "/openapi.json", headers={"Authorization": f"Bearer {keys['admin']}"}).json()
    served = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    listed = {(m, p.replace("{cell}", "{name}").replace("doomed-{name}", "{name}").replace("job-{name}", "{name}").replace("agent-{name}", "{name}").replace("/ghost", "/{name}").replace("{victim}", "{key_id}")
               .replace("/shop", "/{name}").replace("/nano/", "/{name}/").replace("/demo", "/{name}").replace("/Paris", "/{entity}"))
              for m, p, _, _ in ROUTES}
    assert served - listed == set(), "routes missing from the authorisation matrix"
