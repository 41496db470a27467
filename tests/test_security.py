"""No API path to the server's files: knowledge-base imports by server path need an admin key and an
operator-allowed folder (symlinks followed), model names never become paths, bodies are size-capped
even when chunked."""

from __future__ import annotations

import os
import shutil
import time

import httpx
import pytest

from conftest import LiveServer

CANARY = "CANARY-7f3a: the server's private notes must never reach a client"


def _keys(home):
    from loom.serve.auth import KeyStore

    store = KeyStore(home / "loom.db")
    return store.create("root", admin=True)[1], store.create("user")[1]


@pytest.fixture
def disk(tmp_path):
    """allowed/ (the import folder) with a good file, a link to a file outside, and a subfolder holding a
    link that leads outside; outside/ holds the canary."""
    outside, allowed = tmp_path / "outside", tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.md").write_text(f"# Secret\n\n{CANARY}\n", encoding="utf-8")
    (allowed / "refunds.md").write_text("# Refunds\n\nRefunds are paid within 5 working days.\n", encoding="utf-8")
    (allowed / "sub" / "hours.md").write_text("# Hours\n\nThe shop opens at nine every morning.\n", encoding="utf-8")
    os.symlink(outside / "secret.md", allowed / "link.md")
    os.symlink(outside / "secret.md", allowed / "sub" / "leak.md")
    os.symlink(outside, allowed / "sub" / "escape")
    return {"outside": outside, "allowed": allowed, "secret": outside / "secret.md"}


def _kb(url, headers=None):
    r = httpx.post(url + "/v1/kb", json={"name": "shop", "encoder": "minilm"}, headers=headers)
    assert r.status_code == 200, r.text


def test_server_files_cannot_be_read_without_an_import_folder(disk, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with LiveServer(home) as server:  # an open server (no keys), as `make run` starts it
        _kb(server.url)
        secret = str(disk["secret"])
        r = httpx.post(server.url + "/v1/kb/shop/documents", json={"paths": [secret]}, timeout=60)
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        leak = httpx.get(server.url + "/v1/kb/shop/chunks", params={"source": secret})
        assert leak.status_code == 404 and CANARY not in leak.text
        admin, user = _keys(home)
        time.sleep(1.2)  # the server re-reads whether keys exist once a second
        for key in (user, admin):  # keys alone do not open the disk: the operator must name a folder
            r = httpx.post(server.url + "/v1/kb/shop/documents", json={"paths": [secret]},
                           headers={"Authorization": f"Bearer {key}"}, timeout=60)
            assert r.status_code == 403 and CANARY not in r.text
        assert "--kb-import-dir" in r.json()["error"]["message"]


def test_import_folder_admits_admin_keys_inside_it_only(disk, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    admin, user = _keys(home)
    as_admin, as_user = {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {user}"}
    with LiveServer(home, "--kb-import-dir", str(disk["allowed"])) as server:
        _kb(server.url, as_admin)
        docs = server.url + "/v1/kb/shop/documents"
        inside = str(disk["allowed"] / "refunds.md")
        denied = httpx.post(docs, json={"paths": [inside]}, headers=as_user, timeout=60)
        assert denied.status_code == 403  # a normal key may not import server files even inside the folder
        ok = httpx.post(docs, json={"paths": [inside]}, headers=as_admin, timeout=120)
        assert ok.status_code == 200 and len(ok.json()["added"]) == 1, ok.text
        for outside in (str(disk["secret"]), str(disk["allowed"] / "link.md"),  # plain, and through a symlink
                        str(disk["allowed"] / ".." / "outside" / "secret.md"), "../outside/secret.md",
                        str(disk["allowed"] / "sub" / "escape" / "secret.md")):
            r = httpx.post(docs, json={"paths": [outside]}, headers=as_admin, timeout=60)
            assert r.status_code == 403 and CANARY not in r.text, (outside, r.text)
        folder = httpx.post(docs, json={"paths": ["sub"]}, headers=as_admin, timeout=120).json()  # relative: inside the folder
        assert [os.path.basename(s) for s in folder["added"]] == ["hours.md"]
        assert [os.path.basename(f["source"]) for f in folder["failed"]] == ["leak.md"]  # the link out is named, not read
        everything = httpx.get(server.url + "/v1/kb/shop", headers=as_admin).text
        hits = httpx.post(server.url + "/v1/kb/shop/search", json={"query": "private notes server", "k": 10},
                          headers=as_admin).text
        assert CANARY not in everything + hits


def test_model_names_never_become_paths(served_home, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(served_home / "models.json", home / "models.json")
    model_dir = served_home / "slow-model"  # a real model folder on the server's disk, not registered as a name
    with LiveServer(home) as server:
        for name in (str(model_dir), str(model_dir / "config.json"), "../slow-model", "/etc/passwd"):
            r = httpx.post(server.url + "/v1/chat/completions", json={"model": name, "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", (name, r.text)
            r = httpx.post(server.url + "/v1/kb", json={"name": "k", "model": name})
            assert r.status_code == 404, r.text
        ok = httpx.post(server.url + "/v1/chat/completions", json={"model": "slow", "max_tokens": 2,
                                                                   "messages": [{"role": "user", "content": "hi"}]}, timeout=60)
        assert ok.status_code == 200  # registered names still work
        assert httpx.get(server.url + "/v1/evals/..%2F..%2Fmodels.json").status_code in (400, 404)
        assert httpx.get(server.url + "/v1/runs/..%2F..%2Fslow-model/metrics").status_code in (400, 404)


def test_chunked_body_over_the_limit_is_refused(tmp_path):
    with LiveServer(tmp_path / "home") as server:
        def pieces():  # no Content-Length: the server must count, not trust
            for _ in range(60):
                yield b" " * 100_000

        r = httpx.post(server.url + "/v1/kb", content=pieces(), headers={"Content-Type": "application/json"}, timeout=60)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        upload = httpx.post(server.url + "/v1/kb/x/files", files={"files": ("big.txt", b"a" * (65 << 20))}, timeout=60)
        assert upload.status_code == 413  # uploads have their own limit (max_upload_bytes, 64 MiB)


def test_a_link_swapped_in_after_the_check_is_not_followed(tmp_path):
    """The import route checks a path, then reads it: a file or a folder swapped for a link in between
    (a race an attacker with write access to the import folder could win) must not lead outside."""
    from loom.serve.imports import Forbidden, allowed_files, import_roots, read_inside

    root, outside = tmp_path / "imports", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "a.md").write_text(CANARY, encoding="utf-8")
    (root / "a.md").write_text("fine", encoding="utf-8")
    (root / "sub" / "a.md").write_text("fine too", encoding="utf-8")
    roots = import_roots([str(root)])
    files, _ = allowed_files(["a.md", "sub/a.md"], roots, {".md"})
    assert [read_inside(f, roots, 1 << 20) for f in files] == [b"fine", b"fine too"]

    (root / "a.md").unlink()
    (root / "a.md").symlink_to(outside / "a.md")  # the file itself becomes a link out
    (root / "sub").rename(root / "old")
    (root / "sub").symlink_to(outside)  # a folder on the way becomes a link out
    for f in files:
        with pytest.raises(Forbidden):
            read_inside(f, roots, 1 << 20)
