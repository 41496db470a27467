"""A full disk or a read-only LOOM_HOME: training checkpoints, knowledge-base ingestion and key creation
fail with a clear error (CLI exit 2, HTTP 507 with an OpenAI error body) and leave the previous state
as it was. Simulated where the writes happen: the atomic-write layer's flush raises ENOSPC; SQLite
files opened with a page cap (a real SQLITE_FULL) or read-only (a real "readonly database")."""

from __future__ import annotations

import errno
import shutil
import sqlite3
import threading
import time

import httpx
import pytest

from conftest import REPO, copy_home, loom_cli


def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_checkpoint_on_a_full_disk_fails_cleanly_and_keeps_the_last_one(pipeline, loom_home, monkeypatch):
    from loom import atomic

    for part in ("datasets", "tokenizers"):
        shutil.copytree(pipeline["home"] / part, loom_home / part)
    args = ["pretrain", "--data", "tiny", "--name", "r", "--config", str(REPO / "configs/pretrain/nano.yaml"),
            "--save-every", "5", "--eval-every", "5", "--threads", "1", "--quiet"]
    loom_cli(*args, "--max-steps", "10")
    checkpoints = loom_home / "runs" / "r" / "checkpoints"
    before = sorted(p.name for p in checkpoints.iterdir())
    saved = (checkpoints / "step-00000010" / "model.safetensors").read_bytes()

    flush = atomic._sync_tree
    monkeypatch.setattr(atomic, "_sync_tree", _no_space)  # the disk fills while the next checkpoint is flushed
    failed = loom_cli("pretrain", "--name", "r", "--resume", "--max-steps", "20", "--quiet", check=False)
    assert failed.returncode == 2 and "No space left on device" in failed.stderr and "hint:" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert sorted(p.name for p in checkpoints.iterdir()) == before  # no half checkpoint, no temporary folder
    assert (checkpoints / "step-00000010" / "model.safetensors").read_bytes() == saved

    monkeypatch.setattr(atomic, "_sync_tree", flush)  # space freed: the run resumes from the intact checkpoint
    loom_cli("pretrain", "--name", "r", "--resume", "--max-steps", "20", "--quiet")
    assert (checkpoints / "step-00000020").is_dir() and (loom_home / "runs" / "r" / "model" / "config.json").is_file()


class InProcessServer:
    """`create_app` under uvicorn in a thread: a real HTTP server that shares this process's patches."""

    def __init__(self) -> None:
        import uvicorn

        from loom.config import ServeConfig
        from loom.serve.app import create_app
        from loom.serve.process import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(ServeConfig()), host="127.0.0.1", port=port, log_level="critical"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def shop_home(api_home, tmp_path, monkeypatch):
    home = copy_home(api_home, tmp_path / "home")
    monkeypatch.setenv("LOOM_HOME", str(home))
    return home


def test_kb_ingestion_on_a_full_disk(shop_home, tmp_path, monkeypatch):
    from loom.apps.support.store import KnowledgeBase

    real_connect = KnowledgeBase.connect

    def capped(self):  # the database may not grow by one page: SQLite answers SQLITE_FULL
        db = real_connect(self)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        return db

    before = KnowledgeBase("shop").documents()
    big = "\n\n".join(f"Paragraph {i}: parcels to town {i} ship every morning by van." for i in range(400))
    server = InProcessServer()
    try:
        monkeypatch.setattr(KnowledgeBase, "connect", capped)
        r = httpx.post(server.url + "/v1/kb/shop/documents", json={"documents": [{"source": "big.md", "text": big}]}, timeout=120)
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "insufficient_storage" and "disk is full" in r.json()["error"]["message"]
        up = httpx.post(server.url + "/v1/kb/shop/files", files={"files": ("big.txt", big.encode())}, timeout=120)
        assert up.status_code == 507
        monkeypatch.setattr(KnowledgeBase, "connect", real_connect)
        assert KnowledgeBase("shop").documents() == before  # the failed files left no rows behind
        hits = httpx.post(server.url + "/v1/kb/shop/search", json={"query": "returns", "k": 1}).json()["data"]
        assert hits and hits[0]["source"] == "policy.md"  # and the KB still answers
    finally:
        server.stop()
    (tmp_path / "big.md").write_text(big, encoding="utf-8")
    monkeypatch.setattr(KnowledgeBase, "connect", capped)
    cli = loom_cli("kb", "add", "shop", str(tmp_path / "big.md"), check=False)
    assert cli.returncode == 2 and "disk is full" in cli.stderr and "Traceback" not in cli.stderr
    monkeypatch.setattr(KnowledgeBase, "connect", real_connect)
    assert KnowledgeBase("shop").documents() == before


def test_key_creation_on_read_only_storage(shop_home, monkeypatch):
    from loom.serve.auth import KeyStore

    admin = KeyStore().create("root", admin=True)[1]
    writable = KeyStore._connect

    def read_only(self):
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)

    server = InProcessServer()
    try:
        monkeypatch.setattr(KeyStore, "_connect", read_only)
        as_admin = {"Authorization": f"Bearer {admin}"}
        r = httpx.post(server.url + "/v1/keys", json={"name": "bot"}, headers=as_admin)
        assert r.status_code == 507 and set(r.json()["error"]) == {"message", "type", "param", "code"}
        assert "readonly database" in r.json()["error"]["message"]
        listed = httpx.get(server.url + "/v1/keys", headers=as_admin)  # reading still works, with the same key
        assert listed.status_code == 200 and [k["name"] for k in listed.json()["data"]] == ["root"]
        cli = loom_cli("keys", "create", "bot", check=False)
        assert cli.returncode == 2 and "readonly database" in cli.stderr and "hint:" in cli.stderr
    finally:
        server.stop()
    monkeypatch.setattr(KeyStore, "_connect", writable)
    assert [k.name for k in KeyStore().list()] == ["root"]
