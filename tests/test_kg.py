"""Knowledge graphs (issue 19) through the CLI on Chinese and English documents written here: rules
extraction, provenance, incremental replace/remove, aliases across languages, queries, export and
import, and the bad inputs a stranger sends."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import run_loom

CITIES = ("# Cities\n\n北京是中国的首都。清华大学位于北京。马云于1999年在杭州创立了阿里巴巴。阿里巴巴的总部位于杭州。杭州位于浙江。\n\n"
          "Paris is the capital of France. Marie Curie was born in Warsaw. Warsaw is the capital of Poland.\n")
PEOPLE = "鲁迅出生于浙江绍兴。腾讯公司由马化腾创办。\n\nSteve Jobs founded Apple. Apple is headquartered in Cupertino.\n"


def facts(graph_home, graph: str, entity: str) -> set[tuple[str, str, str]]:
    info = json.loads(run_loom("kg", "show", graph, entity, "--json", env_home=graph_home).stdout)
    return {(f["subject"], f["predicate"], f["object"]) for f in info["facts"]}


def test_rules_extract_chinese_and_english_facts_with_their_sources():
    from loom.apps.kg.extract import extract

    _, found = extract(CITIES + PEOPLE)
    triples = {(f.subject.name, f.predicate, f.object.name) for f in found}
    assert {("北京", "capital_of", "中国"), ("马云", "founded", "阿里巴巴"), ("阿里巴巴", "headquartered_in", "杭州"),
            ("鲁迅", "born_in", "浙江绍兴"), ("马化腾", "founded", "腾讯公司"), ("Paris", "capital_of", "France"),
            ("Marie Curie", "born_in", "Warsaw"), ("Steve Jobs", "founded", "Apple"),
            ("Apple", "headquartered_in", "Cupertino")} <= triples
    assert ("杭州", "founded", "阿里巴巴") not in triples  # a place founds nothing
    text = CITIES + PEOPLE
    for f in found:  # every fact points at the sentence it came from
        assert f.subject.name in text[f.start:f.end] and f.object.name in text[f.start:f.end] and 0 < f.confidence <= 1


def test_build_query_and_multi_hop_path(tmp_path, loom_home):
    (tmp_path / "cities.md").write_text(CITIES, encoding="utf-8")
    (tmp_path / "people.txt").write_text(PEOPLE, encoding="utf-8")
    report = json.loads(run_loom("kg", "add", "demo", str(tmp_path / "cities.md"), str(tmp_path / "people.txt"), "--json",
                                 env_home=loom_home).stdout)
    assert report["added"][0]["facts"] >= 7 and report["relations"] >= 11 and report["documents"] == 2
    info = json.loads(run_loom("kg", "show", "demo", "杭州", "--json", env_home=loom_home).stdout)
    hq = next(f for f in info["facts"] if f["predicate"] == "headquartered_in")
    assert hq["sources"][0]["source"] == "cities.md" and hq["sources"][0]["sentence"] == "阿里巴巴的总部位于杭州。"
    route = json.loads(run_loom("kg", "path", "demo", "马云", "浙江", "--json", env_home=loom_home).stdout)
    assert [s["object"] for s in route["steps"]] == ["阿里巴巴", "杭州", "浙江"]
    near = json.loads(run_loom("kg", "neighbors", "demo", "马云", "--hops", "2", "--json", env_home=loom_home).stdout)
    assert {n["name"] for n in near["nodes"]} == {"马云", "阿里巴巴", "杭州"}
    hits = json.loads(run_loom("kg", "search", "demo", "warsaw", "--json", env_home=loom_home).stdout)
    assert hits[0]["name"] == "Warsaw" and hits[0]["relations"] == 2
    no_path = run_loom("kg", "path", "demo", "鲁迅", "Apple", env_home=loom_home, check=False)
    assert no_path.returncode == 1 and "no path" in no_path.stderr


def test_replacing_or_removing_a_document_removes_exactly_what_only_it_supported(tmp_path, loom_home):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("阿里巴巴的总部位于杭州。杭州位于浙江。", encoding="utf-8")
    b.write_text("杭州位于浙江。鲁迅出生于浙江绍兴。", encoding="utf-8")
    run_loom("kg", "add", "g", str(a), str(b), env_home=loom_home)
    assert ("杭州", "located_in", "浙江") in facts(loom_home, "g", "杭州")
    run_loom("kg", "remove", "g", "--source", "a.txt", env_home=loom_home)
    left = facts(loom_home, "g", "杭州")
    assert left == {("杭州", "located_in", "浙江")}  # still supported by b.txt; the headquarters fact is gone
    assert run_loom("kg", "show", "g", "阿里巴巴", env_home=loom_home, check=False).returncode == 2  # the entity too
    b.write_text("鲁迅出生于浙江绍兴。", encoding="utf-8")  # a new version of b drops the Hangzhou sentence
    run_loom("kg", "add", "g", str(b), env_home=loom_home)
    gone = run_loom("kg", "show", "g", "杭州", env_home=loom_home, check=False)
    assert gone.returncode == 2 and "no entity '杭州'" in gone.stderr
    stats = json.loads(run_loom("kg", "list", "--json", env_home=loom_home).stdout)[0]
    assert stats["documents"] == 1 and stats["relations"] == 1


def test_a_chinese_and_an_english_name_become_one_entity(tmp_path, loom_home):
    (tmp_path / "zh.txt").write_text("清华大学位于北京。", encoding="utf-8")
    (tmp_path / "en.txt").write_text("Beijing is the capital of China.", encoding="utf-8")
    run_loom("kg", "add", "cities", str(tmp_path / "zh.txt"), str(tmp_path / "en.txt"), env_home=loom_home)
    run_loom("kg", "alias", "cities", "北京", "Beijing", env_home=loom_home)
    info = json.loads(run_loom("kg", "show", "cities", "Beijing", "--json", env_home=loom_home).stdout)
    assert set(info["aliases"]) == {"北京", "Beijing"}
    assert {(f["predicate"], f["object"]) for f in info["facts"]} >= {("located_in", "北京"), ("capital_of", "China")}
    (tmp_path / "more.txt").write_text("北京位于华北平原。", encoding="utf-8")  # facts added later follow the merge
    run_loom("kg", "add", "cities", str(tmp_path / "more.txt"), env_home=loom_home)
    assert ("北京", "located_in", "华北平原") in facts(loom_home, "cities", "Beijing")


def test_export_and_import(tmp_path, loom_home):
    import networkx as nx

    (tmp_path / "cities.md").write_text(CITIES, encoding="utf-8")
    run_loom("kg", "add", "demo", str(tmp_path / "cities.md"), env_home=loom_home)
    run_loom("kg", "export", "demo", "--format", "graphml", "--out", str(tmp_path / "g.graphml"), env_home=loom_home)
    g = nx.read_graphml(tmp_path / "g.graphml")
    assert "北京" in {d["name"] for _, d in g.nodes(data=True)} and g.number_of_edges() >= 6
    run_loom("kg", "export", "demo", "--format", "neo4j", "--out", str(tmp_path / "neo"), env_home=loom_home)
    with (tmp_path / "neo" / "nodes.csv").open(encoding="utf-8") as f:
        nodes = list(csv.reader(f))
    with (tmp_path / "neo" / "relationships.csv").open(encoding="utf-8") as f:
        rels = list(csv.reader(f))
    assert nodes[0] == ["entityId:ID", "name", "type", ":LABEL"] and rels[0][:3] == [":START_ID", ":END_ID", ":TYPE"]
    ids = {row[0] for row in nodes[1:]}
    assert all(r[0] in ids and r[1] in ids for r in rels[1:]) and "HEADQUARTERED_IN" in {r[2] for r in rels[1:]}
    run_loom("kg", "export", "demo", "--format", "json", "--out", str(tmp_path / "g.json"), env_home=loom_home)
    data = json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))
    assert all(e["evidence"] for e in data["edges"])
    triples = tmp_path / "triples.csv"
    triples.write_text("subject,predicate,object,subject_type,object_type\n杭州,located_in,浙江,place,place\n浙江,part_of,中国,place,place\n,x,y\n",
                       encoding="utf-8")
    result = json.loads(run_loom("kg", "import", "demo", str(triples), "--json", env_home=loom_home).stdout)
    assert result["imported"] == 2 and result["skipped_rows"] == [4]
    route = json.loads(run_loom("kg", "path", "demo", "马云", "中国", "--json", env_home=loom_home).stdout)
    assert route["found"] and len(route["steps"]) <= 4


def test_bad_input_is_refused_clearly(tmp_path, loom_home):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n", encoding="utf-8")
    proc = run_loom("kg", "add", "g", str(empty), env_home=loom_home, check=False)
    assert proc.returncode == 2 and "holds no text" in proc.stderr
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02binary\x00" * 50)
    proc = run_loom("kg", "add", "g", str(binary), env_home=loom_home, check=False)
    assert proc.returncode == 2 and "binary" in proc.stderr
    proc = run_loom("kg", "build", "no-such-kb", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    (tmp_path / "ok.txt").write_text("Paris is the capital of France.", encoding="utf-8")
    run_loom("kg", "add", "places", str(tmp_path / "ok.txt"), env_home=loom_home)
    proc = run_loom("kg", "show", "place", "Paris", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "did you mean: places" in proc.stderr
    proc = run_loom("kg", "show", "places", "Pari", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "did you mean: Paris" in proc.stderr
    proc = run_loom("kg", "neighbors", "places", "Paris", "--hops", "9", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "use 1 to 4" in proc.stderr
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("from,to\nParis,France\n", encoding="utf-8")
    proc = run_loom("kg", "import", "places", str(wrong), env_home=loom_home, check=False)
    assert proc.returncode == 2 and "lacks the column(s) subject, predicate, object; its columns are: from, to" in proc.stderr
    proc = run_loom("kg", "remove", "places", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "--yes" in proc.stderr


def test_self_loops_never_enter_and_cycles_do_not_trap_queries(tmp_path, loom_home):
    triples = tmp_path / "loop.csv"
    triples.write_text("subject,predicate,object\nA,part_of,B\nB,part_of,C\nC,part_of,A\nA,part_of,A\n", encoding="utf-8")
    imported = json.loads(run_loom("kg", "import", "loops", str(triples), "--json", env_home=loom_home).stdout)
    assert imported["imported"] == 3 and imported["self_loops_skipped"] == [5]
    near = json.loads(run_loom("kg", "neighbors", "loops", "A", "--hops", "4", "--json", env_home=loom_home).stdout)
    assert {n["name"] for n in near["nodes"]} == {"A", "B", "C"}
    assert not any(e["subject"] == e["object"] for e in near["edges"])
    route = json.loads(run_loom("kg", "path", "loops", "A", "C", "--json", env_home=loom_home).stdout)
    assert len(route["steps"]) == 1


def test_a_question_names_entities_by_whole_words_and_longest_names(tmp_path, loom_home):
    """Entity spotting for support answers: the aliases' key index, not a scan of every alias."""
    from loom.apps.kg import query
    from loom.apps.kg.context import entities_in
    from loom.apps.kg.store import Graph

    triples = tmp_path / "names.csv"
    triples.write_text("subject,predicate,object\nParis,capital_of,France\n浙江绍兴,part_of,浙江\nThe Beatles,located_in,Liverpool\n"
                       "iPhone 15,part_of,Apple\n", encoding="utf-8")
    run_loom("kg", "import", "names", str(triples), env_home=loom_home)
    graph = Graph.open("names")
    name = {}
    for entity in ("Paris", "France", "浙江绍兴", "浙江", "The Beatles", "iPhone 15"):
        name[query.resolve(graph, entity)] = entity

    def spotted(question: str) -> list[str]:
        return [name.get(i, "?") for i in entities_in(graph, question)]

    assert spotted("A comparison of prices") == []  # not "paris" inside a longer word
    assert spotted("Is PARIS in France?") == ["France", "Paris"]  # longest first, case folded
    assert spotted("鲁迅出生于浙江绍兴吗？") == ["浙江绍兴"]  # the longer name takes the characters, not 浙江 inside it
    assert spotted("the beatles' home town") == ["The Beatles"]
    assert spotted("iphone15手机多少钱") == ["iPhone 15"]  # spaces in the name, none in the question


def test_one_transaction_per_document(tmp_path, loom_home, monkeypatch):
    """A failure halfway through a document leaves the graph as it was: no half-built document."""
    from loom.apps.kg import build
    from loom.apps.kg.store import Graph

    (tmp_path / "a.txt").write_text("杭州位于浙江。", encoding="utf-8")
    build.add_files("t", [tmp_path / "a.txt"])
    before = Graph.open("t").stats()
    calls = {"n": 0}
    real = Graph.add_fact

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk went away")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Graph, "add_fact", flaky)
    (tmp_path / "b.txt").write_text("鲁迅出生于浙江绍兴。马化腾创立了腾讯公司。北京是中国的首都。", encoding="utf-8")
    with pytest.raises(RuntimeError):
        build.add_files("t", [tmp_path / "b.txt"])
    assert Graph.open("t").stats() == before


def test_a_knowledge_base_graph_follows_its_documents(tmp_path, loom_home):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "company.md").write_text("# 公司\n\n马云于1999年在杭州创立了阿里巴巴。阿里巴巴的总部位于杭州。\n", encoding="utf-8")
    (docs / "places.md").write_text("# Places\n\nParis is the capital of France.\n", encoding="utf-8")
    run_loom("kb", "create", "shop", "--encoder", "minilm", env_home=loom_home)
    run_loom("kb", "add", "shop", str(docs), env_home=loom_home)
    first = json.loads(run_loom("kg", "build", "shop", "--json", env_home=loom_home).stdout)
    assert first["added"] == 2 and first["facts"] >= 3
    info = json.loads(run_loom("kg", "show", "shop", "阿里巴巴", "--json", env_home=loom_home).stdout)
    assert all(s["source"].endswith("company.md") for f in info["facts"] for s in f["sources"])
    (tmp_path / "extra.txt").write_text("Rome is the capital of Italy.", encoding="utf-8")
    run_loom("kg", "add", "shop", str(tmp_path / "extra.txt"), env_home=loom_home)  # added to the graph directly
    again = json.loads(run_loom("kg", "build", "shop", "--json", env_home=loom_home).stdout)
    assert again["added"] == 0 and again["unchanged"] == 2
    kb_source = next(s["source"] for f in info["facts"] for s in f["sources"])
    run_loom("kb", "delete-doc", "shop", kb_source, env_home=loom_home)
    third = json.loads(run_loom("kg", "build", "shop", "--json", env_home=loom_home).stdout)
    assert third["removed"] == 1 and third["documents"] == 2  # places.md and extra.txt remain
    assert run_loom("kg", "show", "shop", "阿里巴巴", env_home=loom_home, check=False).returncode == 2
    assert ("Rome", "capital_of", "Italy") in facts(loom_home, "shop", "Rome")


def test_graphs_over_http(tmp_path, loom_home):
    import httpx

    from conftest import LiveServer

    with LiveServer(loom_home) as server:
        url = server.url + "/v1/kg"
        added = httpx.post(url + "/cities/documents", timeout=60, json={"documents": [
            {"source": "zh.txt", "text": "马云于1999年在杭州创立了阿里巴巴。阿里巴巴的总部位于杭州。杭州位于浙江。"},
            {"source": "en.txt", "text": "Paris is the capital of France."}]}).json()
        assert added["documents"] == 2 and added["relations"] == 4
        info = httpx.get(url + "/cities/entities/杭州", timeout=30).json()
        assert {f["predicate"] for f in info["facts"]} == {"located_in", "headquartered_in"}
        assert {s["source"] for f in info["facts"] for s in f["sources"]} == {"zh.txt"}
        route = httpx.get(url + "/cities/path", params={"a": "马云", "b": "浙江"}, timeout=30).json()
        assert [s["object"] for s in route["steps"]] == ["阿里巴巴", "杭州", "浙江"]
        near = httpx.get(url + "/cities/neighbors", params={"entity": "Paris", "hops": 2}, timeout=30).json()
        assert {n["name"] for n in near["nodes"]} == {"Paris", "France"}
        assert httpx.get(url + "/cities/search", params={"q": "阿里"}, timeout=30).json()["data"][0]["name"] == "阿里巴巴"
        missing = httpx.get(url + "/cities/entities/Pari", timeout=30)
        assert missing.status_code == 404 and "did you mean: Paris" in missing.json()["error"]["message"]
        for bad in ("..%2F..%2Fetc", "a b", "%00x"):
            assert httpx.get(f"{url}/{bad}", timeout=30).status_code in (400, 404)
        empty = httpx.post(url + "/cities/documents", timeout=30, json={"documents": [{"source": "e.txt", "text": "   "}]})
        assert empty.status_code == 400 and "holds no text" in empty.json()["error"]["message"]
        gone = httpx.request("DELETE", url + "/cities/documents", params={"source": "zh.txt"}, timeout=30).json()
        assert gone["relations"] == 1
        assert httpx.get(url + "/cities/neighbors", params={"entity": "Paris"}, timeout=30).status_code == 200  # cached at 3 writes
        assert httpx.delete(url + "/cities", timeout=30).json()["deleted"]
        assert httpx.get(url, timeout=30).json()["data"] == []
        # made again under the same name: the server's cached view of the old graph must not come back
        httpx.post(url + "/cities/documents", timeout=60, json={"documents": [  # three writes: the old graph also stood at three
            {"source": f"new{i}.txt", "text": "Lima is the capital of Peru."} for i in range(3)]}).raise_for_status()
        again = httpx.get(url + "/cities/neighbors", params={"entity": "Lima"}, timeout=30).json()
        assert {n["name"] for n in again["nodes"]} == {"Lima", "Peru"}
        assert httpx.get(url + "/cities/entities/Paris", timeout=30).status_code == 404


def test_support_answers_add_the_graph_facts_with_their_sources(tmp_path, loom_home):
    """A question whose answer needs two pages: the knowledge base alone quotes one, the graph adds the
    second fact, cited to the page that states it."""
    docs = tmp_path / "pages"
    docs.mkdir()
    (docs / "马云.md").write_text("# 马云\n\n马云创立了阿里巴巴。马云是一位知名企业家。\n", encoding="utf-8")
    (docs / "阿里巴巴.md").write_text("# 阿里巴巴\n\n阿里巴巴的总部位于杭州。阿里巴巴是一家大型科技企业。\n", encoding="utf-8")
    (docs / "Jobs.md").write_text("# Steve Jobs\n\nSteve Jobs founded Apple. He is a well-known entrepreneur.\n", encoding="utf-8")
    (docs / "Apple.md").write_text("# Apple\n\nApple is headquartered in Cupertino. Apple employs thousands of people.\n", encoding="utf-8")
    run_loom("kb", "create", "pages", "--encoder", "e5", env_home=loom_home)
    run_loom("kb", "add", "pages", str(docs), env_home=loom_home)
    question = "马云创立的公司总部在哪个城市？"
    plain = json.loads(run_loom("support", "ask", "pages", question, "--no-graph", "--json", env_home=loom_home).stdout)
    assert "杭州" not in plain["answer"] and not plain["graph_facts"]
    run_loom("kg", "build", "pages", env_home=loom_home)
    rich = json.loads(run_loom("support", "ask", "pages", question, "--json", env_home=loom_home).stdout)  # graph on by default now
    assert "阿里巴巴的总部位于杭州" in rich["answer"] and "知识图谱" in rich["answer"]
    cited = {c["source"] for c in rich["citations"] if c["title"] == "knowledge graph"}
    assert any(s.endswith("阿里巴巴.md") for s in cited) and any(s.endswith("马云.md") for s in cited)
    english = json.loads(run_loom("support", "ask", "pages", "Where is the company Steve Jobs founded headquartered?", "--json",
                                  env_home=loom_home).stdout)
    assert "Apple is headquartered in Cupertino" in english["answer"]


class _Canned:
    """A chat backend that answers with fixed text (what a remote model might send back)."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def stream(self, request):
        from loom.backends.base import Chunk

        from loom.apps.kg.build import TRIPLES_SCHEMA

        assert request.sampling.json_schema == TRIPLES_SCHEMA  # the model tier always asks for schema-held JSON
        yield Chunk(self.answer)


def test_the_model_tier_keeps_only_facts_the_text_states():
    from loom.apps.kg.build import model_facts

    text = "马云于1999年在杭州创立了阿里巴巴。Paris is the capital of France."
    good = json.dumps({"triples": [
        {"subject": "马云", "subject_type": "PERSON", "relation": "创立", "object": "阿里巴巴", "object_type": "ORG"},
        {"subject": "Paris", "relation": "capital of", "object": "France"},
        {"subject": "Lyon", "relation": "located in", "object": "France"},  # not in the text: dropped
        {"subject": "Paris", "relation": "is", "object": "Paris"},  # a self-loop: dropped
        "not an object"]})
    facts, ok = model_facts(_Canned(good), text)
    assert ok and {(f.subject.name, f.predicate, f.object.name) for f in facts} == {("马云", "founded", "阿里巴巴"), ("Paris", "capital_of", "France")}
    assert all(text[f.start:f.end].count(f.subject.name) for f in facts)  # the evidence span is the stating sentence
    for broken in ("{\"triples\": ", "[1, 2]", "{\"triples\": {\"a\": 1}}", ""):
        facts, ok = model_facts(_Canned(broken), text)
        assert facts == [] and not ok


def test_the_model_tier_on_a_model_too_small_for_the_prompt_fails_clearly(tmp_path, served_home):
    """A real tiny chat model (128-token context) cannot take the extraction prompt: a clear error, exit 2,
    and the graph is left without a half-built document."""
    import shutil

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(served_home / "models.json", home / "models.json")
    (tmp_path / "a.txt").write_text("杭州位于浙江。", encoding="utf-8")
    run_loom("kg", "add", "m", str(tmp_path / "a.txt"), env_home=home)
    (tmp_path / "b.txt").write_text("鲁迅出生于绍兴。", encoding="utf-8")
    proc = run_loom("kg", "add", "m", str(tmp_path / "b.txt"), "--extractor", "auto", "--model", "nano", env_home=home, check=False)
    assert proc.returncode == 2 and "context of 128 tokens" in proc.stderr
    stats = json.loads(run_loom("kg", "list", "--json", env_home=home).stdout)[0]
    assert stats["documents"] == 1 and stats["relations"] == 1


def test_names_given_in_both_languages_merge_by_themselves(tmp_path, loom_home):
    (tmp_path / "zh.txt").write_text("北京（Beijing）是中国的首都。清华大学位于北京。", encoding="utf-8")
    (tmp_path / "en.txt").write_text("Beijing hosted the Olympic Games. Peking University is located in Beijing.", encoding="utf-8")
    run_loom("kg", "add", "auto", str(tmp_path / "zh.txt"), str(tmp_path / "en.txt"), env_home=loom_home)
    info = json.loads(run_loom("kg", "show", "auto", "Beijing", "--json", env_home=loom_home).stdout)
    assert {"北京", "Beijing"} <= set(info["aliases"])
    assert {(f["subject"], f["object"]) for f in info["facts"]} >= {("北京", "中国"), ("清华大学", "北京"), ("Peking University", "北京")}
