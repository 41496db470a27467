"""Recommenders (issue 20) through the CLI on data written here: clustered users and items with string
ids, item texts, a new item nobody has touched, and the bad inputs a stranger sends."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest

from conftest import run_loom

THEMES = {
    "space": "a space adventure with rockets, astronauts and distant planets",
    "romance": "a romantic comedy about two people falling in love in Paris",
    "cooking": "a cooking show with recipes, kitchens and famous chefs",
    "football": "a football documentary about a championship season and its goals",
}


def write_data(folder, users_per_theme: int = 20, seed: int = 0):
    """interactions.csv (user, item, rating; one duplicate row) and items.csv (id, title, description):
    ten items per theme, users who mostly watch one theme, and item 'space-new' with no interactions."""
    rng = random.Random(seed)
    items = {f"{theme}-{i}": (f"{theme.title()} {i}", text) for theme, text in THEMES.items() for i in range(10)}
    items["space-new"] = ("Space New", THEMES["space"])
    rows = []
    for theme in THEMES:
        for u in range(users_per_theme):
            user = f"{theme}-fan-{u}"
            for i in rng.sample(range(10), 6):
                rows.append((user, f"{theme}-{i}", rng.choice([4, 5])))
            other = rng.choice([t for t in THEMES if t != theme])
            rows.append((user, f"{other}-{rng.randrange(10)}", 3))
    rows.append(rows[0])  # a duplicate interaction
    inter = folder / "interactions.csv"
    with inter.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "rating"])
        w.writerows(rows)
    item_file = folder / "items.csv"
    with item_file.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "title", "description"])
        w.writerows((i, t, d) for i, (t, d) in items.items())
    return inter, item_file, rows


def test_train_recommend_explain_and_cold_start(tmp_path, loom_home):
    inter, items, rows = write_data(tmp_path)
    summary = json.loads(run_loom("recommend", "train", "--data", str(inter), "--model", "ease", "--name", "shows", "--json",
                                  env_home=loom_home).stdout)
    assert summary["users"] == 80 and summary["interactions"] == len(rows) - 1 and summary["duplicates_merged"] == 1
    assert summary["params"]["lam"] in (100.0, 250.0, 500.0, 1000.0)
    answer = json.loads(run_loom("recommend", "for-user", "shows", "space-fan-0", "-k", "3", "--json", env_home=loom_home).stdout)
    seen = {item for user, item, _ in rows if user == "space-fan-0"}
    picks = [r["item"] for r in answer["results"]]
    assert answer["route"] == "history" and len(picks) == 3 and not set(picks) & seen
    assert all(p.startswith("space-") for p in picks)  # the user's theme, not another
    assert all(r["because"] and r["because"][0].startswith("because you liked space-") for r in answer["results"])
    liked = json.loads(run_loom("recommend", "for-user", "shows", "--items", "cooking-1,cooking-2", "-k", "2", "--json",
                                env_home=loom_home).stdout)
    assert liked["route"] == "items" and all(r["item"].startswith("cooking-") for r in liked["results"])
    stranger = json.loads(run_loom("recommend", "for-user", "shows", "never-seen", "-k", "2", "--json", env_home=loom_home).stdout)
    assert stranger["route"] == "popular" and stranger["results"][0]["because"][0].startswith("popular:")
    text = run_loom("recommend", "for-user", "shows", "space-fan-0", "-k", "2", env_home=loom_home).stdout
    assert "because you liked" in text


def test_content_and_hybrid_reach_an_item_nobody_has_touched(tmp_path, loom_home):
    inter, items, _ = write_data(tmp_path)
    run_loom("recommend", "train", "--data", str(inter), "--items", str(items), "--model", "hybrid", "--name", "mix", env_home=loom_home)
    by_text = json.loads(run_loom("recommend", "similar", "mix", "--text", "astronauts flying to another planet", "-k", "11",
                                  "--json", env_home=loom_home).stdout)
    assert "space-new" in [r["item"] for r in by_text["results"]] and by_text["encoder"] == "minilm"
    run_loom("recommend", "train", "--data", str(inter), "--items", str(items), "--model", "content", "--name", "words", env_home=loom_home)
    answer = json.loads(run_loom("recommend", "for-user", "words", "space-fan-1", "-k", "5", "--json", env_home=loom_home).stdout)
    assert "space-new" in [r["item"] for r in answer["results"]]
    listing = json.loads(run_loom("recommend", "list", "--json", env_home=loom_home).stdout)
    assert {r["name"]: r["kind"] for r in listing} == {"mix": "hybrid", "words": "content"}
    assert listing[0]["items"] == 41  # 40 watched + the new one


def test_eval_states_its_protocol_and_beats_popularity(tmp_path, loom_home):
    inter, _, _ = write_data(tmp_path)
    run_loom("recommend", "train", "--data", str(inter), "--model", "als", "--name", "mf", env_home=loom_home)
    report = json.loads(run_loom("eval", "recommend", "mf", "--data", str(inter), "--json", env_home=loom_home).stdout)
    assert report["protocol"]["split"] == "per-user random 80/20" and report["protocol"]["seed"] == 0
    assert report["protocol"]["ranking"] == "full (all items)" and report["protocol"]["filters"] == "seen items excluded"
    assert set(report["models"]) == {"als", "pop", "itemknn"}
    assert report["models"]["als"]["ndcg@10"] > report["models"]["pop"]["ndcg@10"] + 0.1
    for model in report["models"].values():
        assert 0 < model["coverage"] <= 1 and 0 <= model["popularity_percentile"] <= 1 and model["params"] is not None
    assert (loom_home / "evals" / "mf-recommend" / "report.json").is_file()
    again = json.loads(run_loom("eval", "recommend", "mf", "--data", str(inter), "--json", env_home=loom_home).stdout)
    figures = lambda r: {m: {k: v for k, v in r["models"][m].items() if "seconds" not in k} for m in r["models"]}  # noqa: E731
    assert figures(again) == figures(report)  # seeded: the same split and settings, the same figures


@pytest.mark.parametrize("kind", ["bpr", "itemknn", "pop"])
def test_other_kinds_train_and_answer(tmp_path, loom_home, kind):
    inter, _, _ = write_data(tmp_path, users_per_theme=8)
    run_loom("recommend", "train", "--data", str(inter), "--model", kind, "--name", kind, env_home=loom_home)
    answer = json.loads(run_loom("recommend", "for-user", kind, "romance-fan-0", "-k", "4", "--json", env_home=loom_home).stdout)
    assert len(answer["results"]) == 4


def test_bad_input_is_refused_clearly(tmp_path, loom_home):
    inter, _, _ = write_data(tmp_path, users_per_theme=4)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    proc = run_loom("recommend", "train", "--data", str(empty), "--name", "x", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "is empty" in proc.stderr
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("customer_name,product_name\nann,tea\n", encoding="utf-8")
    proc = run_loom("recommend", "train", "--data", str(wrong), "--name", "x", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "its columns are: customer_name, product_name" in proc.stderr and "--user-col" in proc.stderr
    proc = run_loom("recommend", "train", "--data", str(inter), "--model", "content", "--name", "x", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "--items" in proc.stderr
    proc = run_loom("recommend", "train", "--data", str(inter), "--model", "svd", "--name", "x", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "unknown recommender 'svd'" in proc.stderr
    run_loom("recommend", "train", "--data", str(inter), "--name", "ok", env_home=loom_home)
    proc = run_loom("recommend", "for-user", "ok", "space-fan-0", "-k", "500", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "k=500 but the catalogue has 40 items" in proc.stderr
    proc = run_loom("recommend", "similar", "ok", "--item", "Space 11", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "did you mean" in proc.stderr
    proc = run_loom("recommend", "for-user", "nope", "u", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "no recommender named 'nope'" in proc.stderr
    proc = run_loom("recommend", "train", "--data", str(inter), "--name", "ok", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr


def test_split_and_metrics_by_hand():
    from loom.apps.recommend.data import Interactions
    from loom.apps.recommend.protocol import Protocol, rank_metrics, split

    rows = np.repeat(np.arange(4), [10, 5, 1, 2]).astype(np.int32)
    data = Interactions([f"u{i}" for i in range(4)], [f"i{j}" for j in range(10)], rows, np.concatenate(
        [np.arange(10), np.arange(5), [0], [1, 2]]).astype(np.int32))
    mask = split(data, Protocol())
    per_user = np.bincount(rows[mask], minlength=4)
    assert per_user.tolist() == [2, 1, 0, 1]  # 20% of 10, of 5 (rounded, at least 1), none of 1, 1 of 2
    assert (mask == split(data, Protocol())).all() and not (mask == split(data, Protocol(seed=1))).all()
    metrics = rank_metrics(np.array([[3, 1, 7], [5, 6, 8]]), [np.array([1, 9]), np.array([0])], k=3)
    ideal = 1 + 1 / np.log2(3)
    assert metrics["recall@3"].tolist() == [0.5, 0.0] and metrics["hit@3"].tolist() == [1.0, 0.0]
    assert metrics["mrr@3"].tolist() == [0.5, 0.0]
    assert metrics["ndcg@3"][0] == pytest.approx((1 / np.log2(3)) / ideal)


def test_recommend_over_http(tmp_path, loom_home):
    import httpx

    from conftest import LiveServer

    inter, items, rows = write_data(tmp_path)
    run_loom("recommend", "train", "--data", str(inter), "--items", str(items), "--model", "hybrid", "--name", "shows", env_home=loom_home)
    with LiveServer(loom_home) as server:
        post = lambda path, body: httpx.post(server.url + path, json=body, timeout=60)  # noqa: E731
        answer = post("/v1/recommend", {"model": "shows", "user": "football-fan-2", "k": 3}).json()
        seen = {item for user, item, _ in rows if user == "football-fan-2"}
        assert answer["route"] == "history" and len(answer["results"]) == 3
        assert not {r["item"] for r in answer["results"]} & seen and all(r["because"] for r in answer["results"])
        only = post("/v1/recommend", {"model": "shows", "items": ["cooking-1"], "k": 2, "only": ["space-1", "space-2", "space-3"]}).json()
        assert {r["item"] for r in only["results"]} <= {"space-1", "space-2", "space-3"}
        text = post("/v1/recommend/similar", {"model": "shows", "text": "宇航员和火箭 astronauts", "k": 5}).json()
        assert any(r["item"].startswith("space-") for r in text["results"])
        listing = httpx.get(server.url + "/v1/recommenders", timeout=30).json()["data"]
        assert listing == [{"name": "shows", "kind": "hybrid", "users": 80, "items": 41, "has_texts": True}]
        picker = httpx.get(server.url + "/v1/recommenders/shows", params={"q": "space", "limit": 3}, timeout=30).json()
        assert len(picker["items"]) == 3 and all("space" in i["item"] for i in picker["items"])
        too_many = post("/v1/recommend", {"model": "shows", "user": "x", "k": 999})
        assert too_many.status_code == 400 and "catalogue has 41 items" in too_many.json()["error"]["message"]
        missing = post("/v1/recommend", {"model": "nope", "user": "x"})
        assert missing.status_code == 404 and missing.json()["error"]["type"]
        for name in ("../shows", "shows/../../etc", "/etc/passwd"):  # names, never paths
            assert post("/v1/recommend", {"model": name, "user": "x"}).status_code in (400, 404)
        both = post("/v1/recommend/similar", {"model": "shows", "item": "space-1", "text": "rockets"})
        assert both.status_code == 400 and "one of them" in both.json()["error"]["message"]


def test_movielens_is_a_ready_dataset_with_its_licence(tmp_path, loom_home):
    listing = json.loads(run_loom("datasets", "list", "--json", env_home=loom_home).stdout)
    movielens = next(r for r in listing if r["name"] == "movielens-100k")
    assert movielens["kind"] == "interactions" and "never redistribute" in movielens["licence"] and movielens["installed"]
    out = tmp_path / "ml.csv"
    run_loom("datasets", "export", "movielens-100k", "--out", str(out), env_home=loom_home)
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with (tmp_path / "ml.items.csv").open(encoding="utf-8") as f:
        items = list(csv.DictReader(f))
    assert len(rows) == 100_000 and len({r["user"] for r in rows}) == 943 and len(items) == 1682
    assert items[0] == {"item": "1", "title": "Toy Story", "year": "1995", "genres": "Animation Children's Comedy"}


def test_item_scores_are_the_scores_of_one_item_alone(tmp_path):
    """Explanations use item_scores(items, columns); it must equal score(one-hot rows)[:, columns] for
    every kind, the hybrid's standardised blend included."""
    from scipy import sparse

    from loom.apps.recommend import models
    from loom.apps.recommend.train import load_data

    inter, items_file, _ = write_data(tmp_path, users_per_theme=6)
    data, texts, _ = load_data(str(inter), str(items_file))
    matrix = data.matrix()
    items, columns = np.array([0, 3, 17, 40]), np.array([1, 2, 5, 33, 40])
    onehot = sparse.csr_matrix((np.ones(len(items), dtype=np.float32), (range(len(items)), items)), shape=(len(items), matrix.shape[1]))
    parts = {kind: models.build(kind) for kind in ("pop", "itemknn", "als", "bpr", "ease", "content")}
    for kind, model in parts.items():
        model.fit(matrix, texts)
        assert np.allclose(model.score(onehot)[:, columns], model.item_scores(items, columns), atol=1e-5), kind
    hybrid = models.Hybrid([parts["ease"], parts["als"], parts["content"]], [0.5, 0.3, 0.2])
    assert np.allclose(hybrid.score(onehot)[:, columns], hybrid.item_scores(items, columns), atol=1e-4)


def test_chinese_item_texts_use_the_multilingual_encoder(tmp_path, loom_home):
    """Chinese catalogues are first-class: their texts go through e5, and a Chinese query finds them."""
    items = tmp_path / "商品.csv"
    items.write_text("物品,标题,描述\n"
                     "tea-1,西湖龙井,杭州的绿茶，清香回甘\n"
                     "tea-2,铁观音,福建乌龙茶，兰花香\n"
                     "phone-1,智能手机,大屏幕，长续航，拍照清晰\n"
                     "phone-2,折叠屏手机,可以折叠的屏幕，轻薄机身\n", encoding="utf-8")
    inter = tmp_path / "购买.csv"
    inter.write_text("用户,物品\n张三,tea-1\n张三,tea-2\n李四,phone-1\n李四,phone-2\n王五,tea-1\n", encoding="utf-8")
    run_loom("recommend", "train", "--data", str(inter), "--items", str(items), "--model", "content", "--name", "shop", env_home=loom_home)
    found = json.loads(run_loom("recommend", "similar", "shop", "--text", "我想买一部拍照好的手机", "-k", "2", "--json",
                                env_home=loom_home).stdout)
    assert found["encoder"] == "e5" and {r["item"] for r in found["results"]} == {"phone-1", "phone-2"}
    liked = json.loads(run_loom("recommend", "for-user", "shop", "王五", "-k", "1", "--json", env_home=loom_home).stdout)
    assert liked["results"][0]["item"] == "tea-2" and liked["results"][0]["because"] == ["because you liked 西湖龙井"]
