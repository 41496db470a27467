"""`loom data prepare` end to end through the CLI, and its bad inputs."""

import json
import unicodedata

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_loom, write_corpus


def _report(home, name):
    return json.loads((home / "datasets" / name / "report.json").read_text(encoding="utf-8"))


def _docs(home, name):
    lines = (home / "datasets" / name / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def test_prepare_cleans_dedups_and_reports(tmp_path, loom_home):
    base = "The committee met on Tuesday to discuss the new library budget for the coming year and voted to expand opening hours."
    near = base.replace("Tuesday", "Wednesday")
    paragraphs = [
        base,
        base,  # exact duplicate
        near,  # near duplicate (one word changed)
        "ＦＵＬＬ　ｗｉｄｔｈ text gets NFKC normalised into plain ASCII letters here.",
        "short",  # too short
        "1234 5678 9012 3456 7890 !!!! #### $$$$ %%%% ^^^^ &&&& ****",  # junk: few letters
        "今天天气很好，我们一起去公园散步，然后在湖边喝茶聊天，一直到傍晚才回家。",
        "A completely different paragraph about mountains, rivers and the long walk to the old harbour town.",
    ]
    src = tmp_path / "in.txt"
    src.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    proc = run_loom("data", "prepare", str(src), "--name", "d1", "--json", env_home=loom_home)
    printed = json.loads(proc.stdout)
    report = _report(loom_home, "d1")
    assert printed["documents_out"] == report["documents_out"] == 4
    assert report["documents_in"] == 8
    assert report["removed"] == {"exact_duplicate": 1, "near_duplicate": 1, "too_short": 1, "junk_few_letters": 1}
    assert report["chars_by_script"]["Han"] > 20 and report["chars_by_script"]["Latin"] > 100
    assert report["documents_by_main_script"] == {"Latin": 3, "Han": 1}
    docs = _docs(loom_home, "d1")
    assert docs[0] == base  # the first copy is kept
    assert "FULL width text" in docs[1]


def test_all_input_formats(tmp_path, loom_home):
    rows = [f"Document number {i} talks about topic {i * 7} in some detail, enough to pass filters." for i in range(6)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"body": r}) for r in rows[:2]) + "\n")
    (tmp_path / "b.csv").write_text("id,body\n1,\"" + rows[2] + "\"\n2,\"" + rows[3] + "\"\n")
    pq.write_table(pa.table({"body": rows[4:]}), tmp_path / "c.parquet")
    (tmp_path / "d.md").write_text("# Heading line that is long enough to keep\n\n" + rows[0].replace("0", "zero") + "\n")
    run_loom("data", "prepare", str(tmp_path), "--name", "multi", "--text-field", "body", "--min-chars", "10", env_home=loom_home)
    docs = _docs(loom_home, "multi")
    assert len(docs) == 8
    assert set(rows) <= set(docs)


def test_line_split_and_stopwords(tmp_path, loom_home):
    src = tmp_path / "lines.txt"
    src.write_text("The cat is on the mat and it is happy today\n我们的猫在垫子上，它很开心\n", encoding="utf-8")
    run_loom("data", "prepare", str(src), "--name", "sw", "--split", "line", "--remove-stopwords", "--min-chars", "3", env_home=loom_home)
    docs = _docs(loom_home, "sw")
    assert docs[0] == "cat mat happy today"
    assert "的" not in docs[1] and "猫" in docs[1]


def test_gb18030_with_encoding_flag(tmp_path, loom_home):
    src = tmp_path / "gbk.txt"
    src.write_bytes("这是一段用国标编码保存的中文文本，用来测试编码参数是否有效。".encode("gb18030"))
    proc = run_loom("data", "prepare", str(src), "--name", "gbk", env_home=loom_home, check=False)
    assert proc.returncode == 2
    assert "not valid utf-8" in proc.stderr and "--encoding" in proc.stderr
    assert not (loom_home / "datasets" / "gbk").exists()
    run_loom("data", "prepare", str(src), "--name", "gbk", "--encoding", "gb18030", env_home=loom_home)
    assert "国标编码" in _docs(loom_home, "gbk")[0]


def _file(name: str, content: bytes):
    def make(d):
        (d / name).write_bytes(content)
        return d / name

    return make


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: d / "missing.txt", "input file not found"),
        (_file("bin.txt", b"\x00\x01\x02binary\x00"), "looks binary"),
        (_file("empty.txt", b""), "no documents left"),
        (_file("x.docx", b"x"), "unsupported file type"),
        (_file("t.jsonl", b'{"content": "hello there"}\n'), "fields present: content"),
        (_file("t.csv", b"a,b\n1,2\n"), "columns: a, b"),
        (_file("bad.jsonl", b"{not json\n"), "is not valid JSON"),
    ],
    ids=["missing", "binary", "empty", "unsupported", "jsonl-field", "csv-column", "bad-json"],
)
def test_bad_inputs_fail_cleanly(tmp_path, loom_home, setup, message):
    path = setup(tmp_path)
    proc = run_loom("data", "prepare", str(path), "--name", "bad", env_home=loom_home, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
    datasets = loom_home / "datasets"
    assert not datasets.exists() or not any(datasets.iterdir()), "half-written output left behind"


def test_existing_dataset_needs_overwrite(tmp_path, loom_home):
    src = write_corpus(tmp_path / "c.txt", lines=20)
    run_loom("data", "prepare", str(src), "--name", "dup", env_home=loom_home)
    proc = run_loom("data", "prepare", str(src), "--name", "dup", env_home=loom_home, check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr and "--overwrite" in proc.stderr
    run_loom("data", "prepare", str(src), "--name", "dup", "--overwrite", env_home=loom_home)
    listing = run_loom("data", "list", "--json", env_home=loom_home)
    assert [d["name"] for d in json.loads(listing.stdout)] == ["dup"]


def test_worker_processes_give_identical_output(tmp_path, monkeypatch):
    from loom.config import DataConfig
    from loom.data.prepare import prepare

    src = write_corpus(tmp_path / "c.txt", lines=600)
    (tmp_path / "c2.txt").write_text(src.read_text() + "\n" + src.read_text())  # every document twice
    inputs = [str(tmp_path / "c2.txt")]
    a = prepare(inputs, "serial", DataConfig(workers=1), progress=False)
    b = prepare(inputs, "parallel", DataConfig(workers=2), progress=False)
    assert a["removed"]["exact_duplicate"] == 600
    assert {k: v for k, v in a.items() if k not in ("name", "seconds", "mb_per_s", "config")} == \
        {k: v for k, v in b.items() if k not in ("name", "seconds", "mb_per_s", "config")}
    from loom import home

    assert (home.dataset_dir("serial") / "documents.jsonl").read_bytes() == (home.dataset_dir("parallel") / "documents.jsonl").read_bytes()


ZH_SUBJECTS = ["我", "他们", "老师", "孩子们", "我的朋友", "这家店", "北京", "妈妈", "公司", "医生"]
ZH_PREDICATES = ["喜欢喝茶", "明天去上海", "正在看书", "很早就起床了", "买了新电脑", "下午开会", "在公园散步", "刚刚回家",
                 "想学中文", "每天跑步"]
ZH_TAILS = ["。", "吗？", "，真好。", "，对吧？", "了。", "呢。", "！", "，我知道。", "，没错。", "，很开心。"]


def stranger_corpus(path, zh_lines: int = 1000, en_lines: int = 300):
    """What a new user has: one sentence a line, no blank lines, short Chinese sentences (6-20
    characters) among English ones, plus a few real fragments that should go."""
    zh = [s + p + t for s in ZH_SUBJECTS for p in ZH_PREDICATES for t in ZH_TAILS][:zh_lines]
    en = [f"Line {i}: the {w} walked slowly to the station before the rain started." for i, w in
          enumerate(["farmer", "teacher", "driver", "painter", "doctor", "writer"] * (en_lines // 6))]
    fragments = ["好的", "嗯", "ok", "yes!"]
    lines = [x for i in range(max(len(zh), len(en))) for x in (zh[i:i + 1] + en[i:i + 1])] + fragments
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return zh, en, fragments


def test_short_chinese_lines_are_kept_and_removals_reported_by_script(tmp_path, loom_home):
    from conftest import loom_cli

    zh, en, fragments = stranger_corpus(tmp_path / "corpus.txt")
    assert min(map(len, zh)) >= 4 and max(map(len, zh)) <= 20
    loom_cli("data", "prepare", str(tmp_path / "corpus.txt"), "--name", "lines", "--split", "line", "--no-near-dedup")
    report = _report(loom_home, "lines")
    kept = set(_docs(loom_home, "lines"))
    zh = [unicodedata.normalize("NFKC", s) for s in zh]  # full-width ？！， become ASCII in cleaning
    assert sum(1 for s in zh if s in kept) == len(zh)  # every short Chinese sentence survives
    assert sum(1 for s in en if s in kept) == len(en)
    assert report["removed"]["too_short"] == len(fragments)  # 好的, 嗯, ok, yes! do not
    assert report["removed_by_script"]["too_short"] == {"Han": 2, "Latin": 2}


def test_a_one_document_text_file_trains_end_to_end(tmp_path, loom_home):
    """3,000+ lines without a blank line are one paragraph-split document: prepare says so, tokenize
    still gives both splits (cut through the token stream) and pretrain finishes."""
    from conftest import REPO, loom_cli

    stranger_corpus(tmp_path / "corpus.txt", zh_lines=1000, en_lines=2400)
    out = loom_cli("data", "prepare", str(tmp_path / "corpus.txt"), "--name", "one")
    assert _report(loom_home, "one")["documents_out"] == 1
    assert "--split line" in out.stdout + out.stderr
    loom_cli("tokenizer", "train", "--data", "one", "--vocab-size", "400", "--name", "t")
    loom_cli("data", "tokenize", "one", "--tokenizer", "t")
    meta = json.loads((loom_home / "datasets" / "one" / "meta.json").read_text(encoding="utf-8"))
    assert meta["train_tokens"] > 10 * meta["val_tokens"] > 0 and meta["split_by"].startswith("token stream")
    loom_cli("pretrain", "--data", "one", "--name", "p", "--config", str(REPO / "configs/pretrain/nano.yaml"),
             "--max-steps", "4", "--eval-every", "2", "--threads", "1", "--quiet")
    result = json.loads((loom_home / "runs" / "p" / "result.json").read_text(encoding="utf-8"))
    assert result["steps"] == 4
