"""/v1/recommend and /v1/recommend/similar: a trained recommender over HTTP (names only: a
recommender is found under $LOOM_HOME/recommenders/ by a checked name, never by a path);
/v1/recommenders lists them and lets the web page find users and items."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from loom.apps.recommend import service, store


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendBody(_Body):
    model: str = Field(min_length=1, description="a recommender trained with `loom recommend train`")
    user: str | None = Field(None, description="a user id from the training data (a new one gets popular items)")
    items: list[str] | None = Field(None, max_length=1000, description="instead of a user: liked item ids")
    k: int = Field(10, ge=1, le=1000)
    exclude: list[str] = Field(default_factory=list, max_length=10000, description="item ids never to return")
    only: list[str] = Field(default_factory=list, max_length=100000, description="if given, return only these items")
    explain: bool = True


class SimilarBody(_Body):
    model: str = Field(min_length=1)
    item: str | None = None
    text: str | None = Field(None, min_length=1, max_length=4000)
    k: int = Field(10, ge=1, le=1000)


def router(authorize) -> APIRouter:
    api = APIRouter(dependencies=[Depends(authorize)])

    # Plain `def`: FastAPI runs these in its thread pool, so numpy work never blocks the event loop.
    @api.post("/v1/recommend")
    def recommend(body: RecommendBody):
        return service.get(body.model).for_user(body.user, body.items, body.k, body.exclude, body.only or None, body.explain)

    @api.post("/v1/recommend/similar")
    def similar(body: SimilarBody):
        return service.get(body.model).similar(body.item, body.text, body.k)

    @api.get("/v1/recommenders")
    def recommenders():
        data = []
        for name in store.list_names():
            rec = service.get(name)
            data.append({"name": name, "kind": rec.model.kind, "users": len(rec.saved.users), "items": len(rec.saved.items),
                         "has_texts": rec.has_texts})
        return {"object": "list", "data": data}

    @api.get("/v1/recommenders/{name}")
    def catalogue(name: str, q: str = "", limit: int = 20):
        """Users and items whose id or title contains q (for pickers), most active/popular first."""
        return service.get(name).browse(q, max(1, min(limit, 200)))

    return api
