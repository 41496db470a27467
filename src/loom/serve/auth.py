"""API keys, per-key rate limits and usage accounting, in $LOOM_HOME/loom.db (SQLite).

A key looks like `loom-<id>-<secret>`: the id (8 hex chars) finds the row, and only the SHA-256 of
the whole key is stored, compared with hmac.compare_digest (constant time). Keys carry 128 random
bits, so a plain hash is enough (no password stretching needed). Limits are sliding 60-second
windows kept in memory per server process.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass

from loom import atomic, home
from loom.errors import InputError, NotFoundError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, digest TEXT NOT NULL, created REAL NOT NULL,
    revoked REAL, rpm INTEGER, tpm INTEGER, admin INTEGER NOT NULL DEFAULT 0, agents TEXT);
CREATE TABLE IF NOT EXISTS usage (
    key_id TEXT NOT NULL, ts REAL NOT NULL, endpoint TEXT NOT NULL, model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS usage_key ON usage (key_id, ts);
"""


@dataclass
class Key:
    id: str
    name: str
    created: float
    revoked: float | None
    rpm: int | None  # requests per minute; None = unlimited
    tpm: int | None  # tokens (prompt + completion) per minute
    admin: bool = False  # may manage keys (/v1/keys, the web Keys page)
    agents: tuple[str, ...] | None = None  # the agents (`agent:NAME`) it may use; None = all, () = none

    def may_use(self, model: str) -> bool:
        """Per-key permission for agents: an agent runs tools on the server's data, so an operator may
        give a key some agents, none, or (the default) all. Other models are not restricted here."""
        return not model.startswith("agent:") or self.agents is None or model[len("agent:"):] in self.agents


def _key(row: tuple) -> Key:
    """A Key from (id, name, created, revoked, rpm, tpm, admin, agents, ...)."""
    agents = None if row[7] is None else tuple(a for a in row[7].split(",") if a)
    return Key(*row[:6], bool(row[6]), agents)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    def __init__(self, path=None) -> None:
        self.path = path or home.keys_db()
        self._lock = threading.Lock()
        with atomic.guarded(self.path), self._connect() as db:
            db.executescript(_SCHEMA)
            if "audio_seconds" not in {row[1] for row in db.execute("PRAGMA table_info(usage)")}:  # keys.db of an older Loom
                db.execute("ALTER TABLE usage ADD COLUMN audio_seconds REAL NOT NULL DEFAULT 0")
            if "agents" not in {row[1] for row in db.execute("PRAGMA table_info(api_keys)")}:
                db.execute("ALTER TABLE api_keys ADD COLUMN agents TEXT")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")  # the CLI can create keys while a server reads them
        return db

    def create(self, name: str, rpm: int | None = None, tpm: int | None = None, admin: bool = False,
               agents: list[str] | None = None) -> tuple[Key, str]:
        """(record, the key in clear: shown once, never stored). agents: the agents it may use (None = all)."""
        for value, what in ((rpm, "rpm"), (tpm, "tpm")):
            if value is not None and value < 1:
                raise InputError(f"--{what} must be at least 1 (got {value})", f"omit --{what} for no limit")
        key_id = secrets.token_hex(4)
        secret = f"loom-{key_id}-{secrets.token_urlsafe(16)}"
        if not name.strip():
            raise InputError("the key needs a name", "say who or what it is for, e.g. `loom keys create alice`")
        for agent in agents or []:
            home.check_name(agent, "agent name")
        record = Key(key_id, name, time.time(), None, rpm, tpm, admin, None if agents is None else tuple(agents))
        with self._lock, atomic.guarded(self.path), self._connect() as db:
            db.execute("INSERT INTO api_keys (id, name, digest, created, revoked, rpm, tpm, admin, agents) VALUES (?,?,?,?,?,?,?,?,?)",
                       (key_id, name, _digest(secret), record.created, None, rpm, tpm, int(admin),
                        None if agents is None else ",".join(agents)))
        return record, secret

    def list(self) -> list[Key]:
        with self._connect() as db:
            rows = db.execute("SELECT id, name, created, revoked, rpm, tpm, admin, agents FROM api_keys ORDER BY created").fetchall()
        return [_key(row) for row in rows]

    def any_active(self) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM api_keys WHERE revoked IS NULL LIMIT 1").fetchone() is not None

    def revoke(self, key_id_or_name: str) -> Key:
        with self._lock, atomic.guarded(self.path), self._connect() as db:
            rows = db.execute("SELECT id FROM api_keys WHERE (id = ? OR name = ?) AND revoked IS NULL",
                              (key_id_or_name, key_id_or_name)).fetchall()
            if not rows:
                raise NotFoundError(f"no active key with id or name {key_id_or_name!r}", "see `loom keys list`")
            if len(rows) > 1:
                raise InputError(f"{len(rows)} active keys are named {key_id_or_name!r}", "revoke by id (see `loom keys list`)")
            db.execute("UPDATE api_keys SET revoked = ? WHERE id = ?", (time.time(), rows[0][0]))
        return next(k for k in self.list() if k.id == rows[0][0])

    def check(self, presented: str) -> Key | None:
        """The active key matching `presented`, or None."""
        parts = presented.split("-")
        if len(parts) < 3 or parts[0] != "loom":
            return None
        with self._connect() as db:
            row = db.execute("SELECT id, name, created, revoked, rpm, tpm, admin, agents, digest FROM api_keys WHERE id = ?",
                             (parts[1],)).fetchone()
        if row is None or row[3] is not None:
            return None
        return _key(row) if hmac.compare_digest(row[8], _digest(presented)) else None

    def record(self, key_id: str, endpoint: str, model: str, prompt_tokens: int, completion_tokens: int,
               audio_seconds: float = 0.0) -> None:
        with self._lock, atomic.guarded(self.path), self._connect() as db:
            db.execute("INSERT INTO usage (key_id, ts, endpoint, model, prompt_tokens, completion_tokens, audio_seconds) "
                       "VALUES (?,?,?,?,?,?,?)", (key_id, time.time(), endpoint, model, prompt_tokens, completion_tokens, audio_seconds))

    def usage(self, since: float = 0.0) -> list[dict]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT k.id, k.name, COUNT(u.ts), COALESCE(SUM(u.prompt_tokens),0), COALESCE(SUM(u.completion_tokens),0), "
                "COALESCE(SUM(u.audio_seconds),0) "
                "FROM api_keys k LEFT JOIN usage u ON u.key_id = k.id AND u.ts >= ? GROUP BY k.id ORDER BY k.created",
                (since,)).fetchall()
        return [{"id": r[0], "name": r[1], "requests": r[2], "prompt_tokens": r[3], "completion_tokens": r[4],
                 "audio_seconds": round(r[5], 1)} for r in rows]


class RateLimiter:
    """Sliding 60 s windows of request times and token counts per key."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._requests: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._tokens: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def admit(self, key: Key) -> float | None:
        """None if the request may go ahead (and counts it), else seconds until it may retry."""
        now = time.monotonic()
        with self._lock:
            reqs, toks = self._trim(self._requests[key.id], now), self._trim(self._tokens[key.id], now)
            if key.rpm is not None and len(reqs) >= key.rpm:
                return reqs[0][0] + self.window - now
            if key.tpm is not None and sum(n for _, n in toks) >= key.tpm:
                return toks[0][0] + self.window - now
            reqs.append((now, 1))
        return None

    def spend(self, key: Key, tokens: int) -> None:
        with self._lock:
            self._tokens[key.id].append((time.monotonic(), tokens))

    def _trim(self, window: collections.deque, now: float) -> collections.deque:
        while window and window[0][0] <= now - self.window:
            window.popleft()
        return window


def admin_only(authorize, server, doing: str):
    """A route dependency: the caller's key must be an admin key (any caller on a server without keys)."""
    from fastapi import Depends

    from loom.serve.errors import APIError

    async def check(key=Depends(authorize)):
        if not server.is_admin(key):
            raise APIError(403, f"{doing} needs an admin key (loom keys create NAME --admin)", "permission_error", "admin_required")
        return key

    return check
