"""/v1/agents: list, define and delete agents over HTTP (the web Agents page); asking one goes through
/v1/chat/completions with model "agent:NAME".

Defining or deleting an agent needs an admin key once keys exist (like managing keys): an agent runs
tools over the server's data. A request can only name tools the operator declared (agent.save checks),
never a URL or a command, and a chat model by name, never a path."""

from __future__ import annotations

import anyio
import yaml
from fastapi import APIRouter, Depends

from loom.config import AgentConfig
from loom.serve.auth import admin_only


def router(authorize, server) -> APIRouter:
    from loom import catalog, home
    from loom.apps.agent import agent
    from loom.errors import InputError, LoomError, NotFoundError

    api = APIRouter(prefix="/v1/agents", dependencies=[Depends(authorize)])
    admin = admin_only(authorize, server, "defining or deleting agents")

    def entry(name: str) -> dict:
        try:
            return {"name": name, **agent.load(name).model_dump()}
        except (LoomError, ValueError, yaml.YAMLError) as e:  # e.g. a tool disconnected since: listed, so it can be fixed or deleted
            return {"name": name, "error": getattr(e, "message", None) or str(e)[:500]}

    def check_model(model: str | None) -> None:
        """A chat model the server knows, by name: never a path a client picks."""
        if not model:
            return
        try:
            found = catalog.resolve(model, allow_paths=False)
        except NotFoundError as e:  # a bad field of the body, not a missing route: 400
            raise InputError(e.message, e.hint, param="model") from e
        if found.task != "generate":
            raise InputError(f"{model!r} is a {found.task} model, not a chat model", "pick one with task generate in GET /v1/models",
                             param="model")

    def forget(name: str) -> None:
        """The server keeps an opened agent:NAME with the definition it read: drop it, so the next question
        uses the new one (its chat model stays loaded: it belongs to the server)."""
        opened = server.backends.pop(agent.PREFIX + name, None)
        if opened is not None:
            opened.close()

    @api.get("")
    async def list_agents(key=Depends(authorize)):
        names = [n for n in agent.names() if key is None or key.may_use(agent.PREFIX + n)]
        return {"object": "list", "data": await anyio.to_thread.run_sync(lambda: [entry(n) for n in names])}

    @api.get("/tools")
    async def tools(key=Depends(authorize)):
        # MCP servers are asked for their tools: a worker thread, never the event loop
        rows = await anyio.to_thread.run_sync(lambda: agent.available_tools(show_urls=server.is_admin(key)))
        return {"object": "list", "data": rows}

    @api.put("/{name}", dependencies=[Depends(admin)])
    async def save(name: str, body: AgentConfig):
        home.check_name(name, "agent name")

        def work() -> dict:
            check_model(body.model)
            try:
                agent.save(name, body)  # unknown or undeclared tools: InputError naming the tool
            except InputError as e:
                e.param = e.param or "tools"  # the field at fault, for OpenAI-style clients
                raise
            return entry(name)

        saved = await anyio.to_thread.run_sync(work)
        forget(name)
        return saved

    @api.delete("/{name}", dependencies=[Depends(admin)])
    async def remove(name: str):
        path = home.agent_path(name)  # a bad name is a 400 here, before any file is touched
        if not path.is_file():
            raise NotFoundError(f"no agent named {name!r}", "GET /v1/agents lists them")
        path.unlink()
        forget(name)
        return {"name": name, "deleted": True}

    return api
