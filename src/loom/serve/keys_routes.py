"""/v1/keys: manage API keys over HTTP (the web Keys page). Once any key exists these need an
admin key; on a server without keys the first key made here is an admin key, so nobody is locked out."""

from __future__ import annotations

import time

import anyio
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from loom.serve.auth import admin_only


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    admin: bool = False
    agents: list[str] | None = Field(None, max_length=200, description="the agents (agent:NAME) the key may use; "
                                     "omitted = all, [] = none")


def router(authorize, server) -> APIRouter:
    api = APIRouter(prefix="/v1/keys", dependencies=[Depends(admin_only(authorize, server, "managing keys"))])

    @api.get("")
    async def list_keys(days: float = 30.0):
        keys = await anyio.to_thread.run_sync(server.keys.list)
        usage = {u["id"]: u for u in await anyio.to_thread.run_sync(server.keys.usage, time.time() - days * 86400)}
        return {"object": "list", "data": [k.__dict__ | {k2: usage.get(k.id, {}).get(k2, 0) for k2 in
                                                           ("requests", "prompt_tokens", "completion_tokens", "audio_seconds")} for k in keys]}

    @api.post("")
    async def create(body: CreateKey):
        first = not server.keys_required()
        record, secret = await anyio.to_thread.run_sync(lambda: server.keys.create(body.name, body.rpm, body.tpm, body.admin or first,
                                                                                           body.agents))
        server.forget_key_state()
        return record.__dict__ | {"key": secret, "note": "shown once: only its hash is stored"}

    @api.delete("/{key_id}")
    async def revoke(key_id: str):
        record = await anyio.to_thread.run_sync(server.keys.revoke, key_id)
        server.forget_key_state()
        return record.__dict__

    return api
