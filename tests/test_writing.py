"""Writing applications through the CLI: summaries (extractive and abstractive), ROUGE evaluation,
data reports whose numbers all come from the data."""

from __future__ import annotations

import json
import re

import pytest

from conftest import loom_cli

ARTICLE = (
    "The city council approved a new plan for public transport on Monday. "
    "The plan adds forty electric buses and two tram lines by the end of next year. "
    "Council members said the buses would cut emissions in the city centre by a third. "
    "Local shop owners welcomed the tram lines, which will pass through the old market. "
    "Some residents worried about construction noise during the two years of building work. "
    "The council promised to limit night work and to publish a weekly schedule. "
    "Funding comes from a national green transport fund and from parking fees. "
    "The first electric buses will start running in the spring."
)
ZH_ARTICLE = ("市政府周一批准了新的公共交通计划。计划在明年年底前增加四十辆电动公交车和两条有轨电车线路。"
              "官员表示，电动公交车将使市中心的排放减少三分之一。老城区的商户欢迎新的电车线路。"
              "一些居民担心施工期间的噪音。政府承诺限制夜间施工，并每周公布施工时间表。")


def test_extractive_summaries_pick_whole_sentences_in_order(tmp_path):
    doc = tmp_path / "news.txt"
    doc.write_text(ARTICLE, encoding="utf-8")
    sentences = [s.strip() for s in re.split(r"(?<=\.)\s+", ARTICLE)]
    for method in ("centroid", "textrank", "lead"):
        out = json.loads(loom_cli("summarize", str(doc), "-n", "2", "--method", method, "--json").stdout)["summary"]
        picked = [s for s in sentences if s in out]
        assert len(picked) == 2 and out == " ".join(picked)  # whole sentences, document order
    lead = json.loads(loom_cli("summarize", ARTICLE, "--ratio", "0.5", "--method", "lead", "--json").stdout)["summary"]
    assert lead == " ".join(sentences[:4])
    zh = json.loads(loom_cli("summarize", ZH_ARTICLE, "-n", "2", "--json").stdout)["summary"]
    assert zh.count("。") == 2 and all(part + "。" in ZH_ARTICLE for part in zh.split("。")[:-1])


def test_summarize_bad_input(tmp_path):
    empty = loom_cli("summarize", "   ", check=False)
    assert empty.returncode == 2 and "empty" in empty.stderr
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02binary")
    proc = loom_cli("summarize", str(binary), check=False)
    assert proc.returncode == 2 and "binary" in proc.stderr
    no_model = loom_cli("summarize", ARTICLE, "--mode", "abstractive", check=False)
    assert no_model.returncode == 2 and "--model" in no_model.stderr and "loom models pull qwen2.5-1.5b" in no_model.stderr
    extractive_still_works = loom_cli("summarize", ARTICLE, "-n", "1")
    assert extractive_still_works.stdout.strip()


def test_abstractive_map_reduce_with_a_chat_model(served_home, monkeypatch):
    monkeypatch.setenv("LOOM_HOME", str(served_home))
    long_text = " ".join([ARTICLE] * 12)  # > one map window: exercises map-reduce
    out = json.loads(loom_cli("summarize", long_text, "--mode", "abstractive", "--model", "nano", "--json").stdout)
    assert out["mode"] == "abstractive" and isinstance(out["summary"], str)


def test_eval_summarize_reports_rouge_for_each_system(tmp_path):
    data = tmp_path / "sums.jsonl"
    rows = [{"text": ARTICLE, "summary": "The council approved forty electric buses and two tram lines."},
            {"text": ZH_ARTICLE, "summary": "市政府批准增加电动公交车和电车线路。"}]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    report = json.loads(loom_cli("eval", "summarize", "--data", str(data), "--json").stdout)
    assert set(report["results"]) == {"lead-3", "textrank", "loom-extractive"}
    for scores in report["results"].values():
        assert 0 < scores["rouge1"] <= 1 and 0 <= scores["rouge2"] <= scores["rouge1"]


def test_rouge_matches_hand_computed_values():
    from loom.eval.text import rouge_l, rouge_n

    assert rouge_n("the cat sat", "the cat sat on the mat", 1) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert rouge_n("猫坐在垫子上", "猫坐在垫子上", 2) == 1.0  # characters for Chinese
    # a digit or Latin run next to Chinese is its own unit: "14手机" is 14 + 手 + 机, not one token
    assert rouge_n("小米14手机", "华为14手机", 1) == pytest.approx(3 / 5)
    assert rouge_l("a b c d", "a x c d") == pytest.approx(0.75)


SALES = """region,product,units,price
North,tea,120,3.5
North,coffee,80,4.0
South,tea,200,3.5
South,coffee,150,4.5
East,tea,90,3.0
East,coffee,60,4.0
West,tea,,3.5
"""


def test_report_numbers_all_come_from_the_data(tmp_path):
    data = tmp_path / "sales.csv"
    data.write_text(SALES, encoding="utf-8")
    out = tmp_path / "sales.html"
    result = json.loads(loom_cli("report", str(data), "--title", "Sales", "--out", str(out), "--json").stdout)
    assert out.is_file() and "data:image/png;base64," in out.read_text(encoding="utf-8")
    assert result["charts"] and result["narrative_source"] == "template"
    narrative = result["narrative"]
    assert "7 rows" in narrative and "units: mean 116.67" in narrative  # (120+80+200+150+90+60)/6
    assert "missing in 1 rows" in narrative and "South has the highest average units (175)" in narrative
    from loom.apps.report import numbers_in

    stated = {n for fact in result["facts"] for n in fact["numbers"]}
    assert numbers_in(narrative) <= {n.replace(",", "") for n in stated}
    md = tmp_path / "sales.md"
    loom_cli("report", str(data), "--out", str(md))
    assert "![Distribution of units](sales_files/chart3.png)" in md.read_text(encoding="utf-8")  # region, product, then units
    assert (tmp_path / "sales_files" / "chart1.png").read_bytes()[:4] == b"\x89PNG"


def test_report_falls_back_to_the_template_when_the_facts_do_not_fit_the_model(tmp_path, served_home, monkeypatch):
    monkeypatch.setenv("LOOM_HOME", str(served_home))
    data = tmp_path / "sales.csv"
    data.write_text(SALES, encoding="utf-8")
    proc = loom_cli("report", str(data), "--out", str(tmp_path / "r.html"), "--model", "nano", "--json")
    result = json.loads(proc.stdout)
    assert result["narrative_source"] == "template" and "do not fit the model's context" in proc.stderr  # nano: 128 tokens
    from loom.apps.report import numbers_in

    stated = {n.replace(",", "") for fact in result["facts"] for n in fact["numbers"]}
    assert all(n in stated or n.rstrip("0").rstrip(".") in stated for n in numbers_in(result["narrative"]))


def test_report_bad_input(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"not": "a list"}', encoding="utf-8")
    proc = loom_cli("report", str(bad), check=False)
    assert proc.returncode == 2 and "list of objects" in proc.stderr
    proc = loom_cli("report", str(tmp_path / "missing.csv"), check=False)
    assert proc.returncode == 2 and "not found" in proc.stderr


class Scripted:
    """A chat backend that answers from a script (a real Backend subclass): lets translation tests
    check batching, Markdown and glossary logic exactly, which an untrained model cannot."""

    def __init__(self, answer):
        from loom.backends.base import Backend

        self.answer, self.prompts = answer, []
        self.backend = type("ScriptedBackend", (Backend,), {"name": "scripted", "stream": self._stream})()

    def _stream(self, request):
        from loom.backends.base import Chunk

        prompt = request.messages[-1]["content"]
        self.prompts.append(prompt)
        yield Chunk(self.answer(prompt), "stop", 1, 1)


def _numbered(prompt):
    return [(int(n), text) for n, text in re.findall(r"^(\d+)\. (.*)$", prompt.split("\n\n", 1)[1], flags=re.M)]


DICT = {"Install the package": "安装软件包", "Run ⟦0⟧ to start": "运行⟦0⟧来启动", "Loom works offline": "Loom 可以离线工作",
        "Models are saved locally": "模型保存在本地"}


def test_translation_keeps_markdown_and_batches():
    from loom.apps.translate import translate

    doc = "# Install the package\n\n- Run `loom serve` to start\n- Loom works offline\n\n```bash\npip install loom\n```\n\nModels are saved locally\n"
    script = Scripted(lambda p: "\n".join(f"{n}. {DICT[t]}" for n, t in _numbered(p)))
    out = translate(doc, "zh", script.backend)
    assert out.text == "# 安装软件包\n\n- 运行`loom serve`来启动\n- Loom 可以离线工作\n\n```bash\npip install loom\n```\n\n模型保存在本地\n"
    assert len(script.prompts) == 1  # one numbered batch, not one call per line
    from loom.apps.translate import translate_stream

    pieces = list(translate_stream(doc, "zh", script.backend))
    assert "".join(p for p in pieces if isinstance(p, str)) == out.text and pieces[-1].text == out.text


def test_glossary_is_enforced_and_reported():
    from loom.apps.translate import translate

    # The model ignores the glossary: Loom retries, then substitutes the source term it kept verbatim.
    script = Scripted(lambda p: "\n".join(f"{n}. 使用 Loom 平台" if "Loom" in t else f"{n}. 你好" for n, t in _numbered(p)))
    out = translate("Use the Loom platform", "zh", script.backend, {"Loom": "织机"})
    assert "织机" in out.text and out.glossary_checked == 1 and out.glossary_missing == []
    assert any("retry" in p for p in script.prompts)
    # A term the model neither translates as required nor keeps verbatim is reported.
    script = Scripted(lambda p: "\n".join(f"{n}. 使用这个平台" for n, _ in _numbered(p)))
    out = translate("Use the Loom platform", "zh", script.backend, {"Loom": "织机"})
    assert out.glossary_missing == [("Loom", "织机")]


def test_translate_cli_bad_input(tmp_path, served_home, monkeypatch):
    monkeypatch.setenv("LOOM_HOME", str(served_home))
    pair = loom_cli("translate", "hello world", "--to", "fr", "--model", "nano", check=False)
    assert pair.returncode == 2 and "--to zh" in pair.stderr
    same = loom_cli("translate", "hello world", "--to", "en", "--model", "nano", check=False)
    assert same.returncode == 2 and "already in English" in same.stderr
    glossary = tmp_path / "g.csv"
    glossary.write_text("source,target\nLoom,织机\nLoom,罗姆\n", encoding="utf-8")
    conflict = loom_cli("translate", "hello Loom", "--to", "zh", "--glossary", str(glossary), "--model", "nano", check=False)
    assert conflict.returncode == 2 and "织机" in conflict.stderr and "罗姆" in conflict.stderr
    monkeypatch.setenv("LOOM_HOME", str(tmp_path / "empty_home"))
    no_model = loom_cli("translate", "hello world", "--to", "zh", check=False)
    assert no_model.returncode == 2 and "loom models default" in no_model.stderr


def test_write_checks_constraints_and_reports_failure(served_home, monkeypatch):
    monkeypatch.setenv("LOOM_HOME", str(served_home))
    # An untrained 2-layer model cannot meet a keyword constraint: Loom retries, then reports it.
    proc = loom_cli("write", "poem", "--topic", "the sea", "--keywords", "lighthouse,zebra", "--retries", "1",
                    "--model", "nano", "--json", check=False)
    assert proc.returncode == 3
    result = json.loads(proc.stdout)
    assert result["drafts"] == 2 and any("zebra" in p for p in result["problems"])
    assert "draft 1:" in proc.stderr and "still breaks the request" in proc.stderr
    bad = loom_cli("write", "sonnet", "--topic", "x", "--model", "nano", check=False)
    assert bad.returncode == 2 and "story, poem, blog, copy" in bad.stderr


def test_write_prompt_templates_cover_both_languages():
    from loom.apps import write

    assert "lighthouse" in write.prompt("story", "a lighthouse", None, 80, ["sea"], "en") and "sea" in write.prompt("story", "a lighthouse", None, 80, ["sea"], "en")
    zh = write.prompt("poem", "月亮", "安静", 40, ["秋天"], "zh")
    assert "月亮" in zh and "秋天" in zh and "40" in zh
    assert write.problems("月" * 40, "zh", 40, ["秋天"]) == ["missing keywords: 秋天"]
    assert write.problems("word " * 10, "en", 80, [])[0].startswith("length 10 words")


def test_models_pull_assembles_verifies_and_refuses_a_bad_hash(tmp_path, monkeypatch):
    import hashlib
    import sys

    from loom.model import pull

    for i, payload in enumerate((b"GGUF-part-one|", b"part-two"), 1):  # two tiny "packages" on sys.path
        (tmp_path / f"fakepart{i}" / "data").mkdir(parents=True)
        (tmp_path / f"fakepart{i}" / "__init__.py").write_text("", encoding="utf-8")
        (tmp_path / f"fakepart{i}" / "data" / "blob.bin").write_bytes(payload)
    monkeypatch.syspath_prepend(str(tmp_path))
    whole = b"GGUF-part-one|part-two"
    good = pull.Pullable("tiny", "test model", ("fakepart1==0", "fakepart2==0"), (("fakepart1", "data/blob.bin"), ("fakepart2", "data/blob.bin")),
                         len(whole), hashlib.sha256(whole).hexdigest(), "tiny.gguf")
    bad = pull.Pullable(**{**good.__dict__, "name": "tampered", "sha256": "0" * 64, "filename": "tampered.gguf"})
    monkeypatch.setattr(pull, "PULLABLE", {"tiny": good, "tampered": bad})
    loom_cli("models", "pull", "tiny", "--default-unless-chosen")  # what `make run` does with the recommended model
    entry = json.loads(loom_cli("models", "show", "tiny", "--json").stdout)
    assert entry["chat"] and entry["backend"] == "gguf" and open(entry["path"], "rb").read() == whole
    assert "chat: tiny" in loom_cli("models", "default").stdout
    loom_cli("models", "default", "smollm2")  # a person's choice: the next `make run` leaves it alone
    again = loom_cli("models", "pull", "tiny", "--if-missing", "--default-unless-chosen")
    assert "is ready at" in again.stdout + again.stderr and "chat: smollm2" in loom_cli("models", "default").stdout
    refused = loom_cli("models", "pull", "tampered", check=False)
    assert refused.returncode == 2 and "expected " + "0" * 64 in refused.stderr
    assert not (tmp_path / "loom_home" / "models" / "tampered.gguf").exists()
    assert "tampered" not in loom_cli("models", "list", "--json").stdout
    unknown = loom_cli("models", "pull", "gpt-5", check=False)
    assert unknown.returncode == 2 and "available: tiny, tampered" in unknown.stderr
    for module in ("fakepart1", "fakepart2"):
        sys.modules.pop(module, None)


def test_writing_endpoints_over_http(served_home, tmp_path):
    import shutil

    import httpx

    from conftest import LiveServer

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(served_home / "models.json", home / "models.json")
    server = LiveServer(home, "--preload", "nano")
    try:
        api = server.url + "/v1"
        extractive = httpx.post(f"{api}/summarize", json={"input": ARTICLE, "sentences": 2}, timeout=120).json()
        assert extractive["summary"].count(".") == 2
        no_model = httpx.post(f"{api}/summarize", json={"input": ARTICLE, "mode": "abstractive"})
        assert no_model.status_code == 400 and "chat model" in no_model.json()["error"]["message"]
        with httpx.stream("POST", f"{api}/summarize", json={"input": ARTICLE, "mode": "abstractive", "model": "nano",
                                                             "stream": True}, timeout=120) as r:
            events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:") and line != "data: [DONE]"]
        assert events[-1]["done"] and events[-1]["summary"] == "".join(e.get("text", "") for e in events[:-1]).strip()
        written = httpx.post(f"{api}/write", json={"kind": "poem", "topic": "rain", "keywords": ["zebra"], "retries": 0,
                                                   "model": "nano"}, timeout=120).json()
        assert written["ok"] is False and written["problems"]
        bad_pair = httpx.post(f"{api}/translate", json={"input": "hello", "to": "de", "model": "nano"})
        assert bad_pair.status_code == 400
        rows = [{"city": "A", "sales": 10}, {"city": "B", "sales": 30}, {"city": "A", "sales": 20}]
        report = httpx.post(f"{api}/report", json={"data": rows, "title": "Sales"}, timeout=120).json()
        assert "mean 20" in report["narrative"] and report["html"].startswith("<!doctype html>")
    finally:
        server.stop()


def test_model_narrative_is_adopted_only_without_invented_numbers(tmp_path):
    from loom.apps import report as r

    header, rows = ["city", "sales"], [["A", "10"], ["B", "30"], ["A", "20"]]
    honest = r.compute_facts("Sales", header, rows)
    assert r.apply_model_narrative(honest, Scripted(lambda p: "Sales average 20, between 10 and 30.").backend) is None
    assert honest.narrative_source == "scripted" and "average 20" in honest.narrative
    liar = r.compute_facts("Sales", header, rows)
    liar.narrative = r.template_narrative(liar)
    warning = r.apply_model_narrative(liar, Scripted(lambda p: "Sales grew 45% to 1,234 units.").backend)
    assert "1234" in warning and "45" in warning and liar.narrative_source == "template"


def test_tang_poems_dataset_reads_the_fortunes_format(tmp_path, monkeypatch):
    # The fortunes-zh layout: entries split by '%', coloured title and author lines, then the verses.
    entry = "\x1b[32m《静夜思》\x1b[m\n\x1b[33m作者：李白\x1b[m\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n"
    (tmp_path / "tang300.u8").write_text(entry + "%\n" + entry.replace("床前", "窗前"), encoding="utf-8")
    (tmp_path / "song100.u8").write_text(entry, encoding="utf-8")
    monkeypatch.setenv("LOOM_FORTUNES_DIR", str(tmp_path))
    out = tmp_path / "poems.jsonl"
    loom_cli("datasets", "export", "tang-poems", "--out", str(out))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["label"] for r in rows] == ["tang300", "tang300", "song100"]
    assert rows[0]["text"] == "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。" and rows[1]["text"].startswith("窗前")
    monkeypatch.setenv("LOOM_FORTUNES_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr("loom.datasets.FORTUNES_DIRS", ())
    missing = loom_cli("datasets", "export", "tang-poems", "--out", str(out), check=False)
    assert missing.returncode == 2 and "fortunes-zh" in missing.stderr
