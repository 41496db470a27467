"""Knowledge bases through the CLI: ingestion (formats, updates, bad files, kill safety), search,
support answers with citations and hand-off, retrieval evaluation."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import REPO, loom_cli

POLICY = """# Shipping

We ship to 40 countries. Standard delivery takes 3 to 5 days. Express delivery arrives the next working day if you order before 2 pm.

# Returns

You can return any item within 30 days of delivery. The item must be unused and in its original packaging.

## Damaged items

If an item arrives damaged, send us a photo within 48 hours and we will send a replacement at no cost.
"""
FAQ = """question,answer
How long do refunds take?,Refunds are paid back to your card within 5 working days.
Can I change my delivery address?,Yes: open the order page and choose Change address before the parcel ships.
"""
HTML = """<html><head><style>p{}</style><script>var x=1;</script></head><body><h1>Warranty</h1>
<p>Every laptop comes with a two year warranty covering hardware faults.</p><nav>menu</nav></body></html>"""


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "policy.md").write_text(POLICY, encoding="utf-8")
    (folder / "faq.csv").write_text(FAQ, encoding="utf-8")
    (folder / "warranty.html").write_text(HTML, encoding="utf-8")
    return folder


@pytest.fixture
def shop(docs, loom_home):
    loom_cli("kb", "create", "shop", "--encoder", "minilm")
    loom_cli("kb", "add", "shop", str(docs))
    return docs


def search(home, query, *extra):
    return json.loads(loom_cli("kb", "search", "shop", query, "--json", *extra).stdout)


def test_ingest_formats_and_search_json(shop, loom_home):
    shown = json.loads(loom_cli("kb", "show", "shop", "--json").stdout)
    assert shown["documents"] == 3 and shown["faqs"] == 2 and shown["encoder"] == "minilm"
    hits = search(loom_home, "my parcel arrived broken", "-k", "3")
    assert hits[0]["source"].endswith("policy.md") and "damaged" in hits[0]["text"]
    assert hits[0]["title"] == "Returns > Damaged items"  # the heading path travels with the chunk
    assert {"bm25", "dense"} <= set(hits[0]["scores"])
    warranty = search(loom_home, "laptop warranty years", "-k", "1")[0]
    assert warranty["source"].endswith("warranty.html") and "var x" not in warranty["text"] and "menu" not in warranty["text"]
    bm25_only = search(loom_home, "replacement photo", "--mode", "bm25")
    assert all(set(h["scores"]) <= {"bm25", "bm25_rank"} for h in bm25_only) and "photo" in bm25_only[0]["text"]


def test_readd_skips_unchanged_and_replaces_changed(shop, loom_home):
    again = loom_cli("kb", "add", "shop", str(shop))
    assert "0 added, 0 replaced, 3 unchanged" in again.stderr
    (shop / "policy.md").write_text(POLICY.replace("40 countries", "55 countries"), encoding="utf-8")
    changed = loom_cli("kb", "add", "shop", str(shop))
    assert "0 added, 1 replaced, 2 unchanged" in changed.stderr
    texts = " ".join(h["text"] for h in search(loom_home, "how many countries do you ship to", "-k", "10"))
    assert "55 countries" in texts and "40 countries" not in texts
    loom_cli("kb", "delete-doc", "shop", str(shop / "policy.md"))
    assert all(not h["source"].endswith("policy.md") for h in search(loom_home, "countries ship delivery", "-k", "10"))


def test_bad_files_are_named_and_skipped(tmp_path, loom_home):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_text("Our shop opens at nine in the morning every weekday.", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    (folder / "empty.md").write_text("   \n\n", encoding="utf-8")
    (folder / "bad_faq.csv").write_text("q_text,reply\nhi,there\n", encoding="utf-8")
    loom_cli("kb", "create", "mixed", "--encoder", "minilm")
    proc = loom_cli("kb", "add", "mixed", str(folder))
    assert "1 added" in proc.stderr and "4 failed" in proc.stderr
    for name in ("broken.pdf", "broken.docx", "empty.md", "bad_faq.csv"):
        assert name in proc.stderr
    assert "q_text, reply" in proc.stderr  # the FAQ error lists the columns that exist
    missing = loom_cli("kb", "search", "nope", "hello", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_support_answers_cite_and_hand_off(shop, loom_home):
    faq = json.loads(loom_cli("support", "ask", "shop", "How long do refunds take?", "--json").stdout)
    assert faq["mode"] == "faq" and "5 working days" in faq["answer"] and faq["citations"][0]["source"].endswith("faq.csv")
    extract = json.loads(loom_cli("support", "ask", "shop", "What should I do if my item arrives damaged?", "--json").stdout)
    assert extract["mode"] == "extractive" and "photo" in extract["answer"] and "[1]" in extract["answer"]
    assert not extract["handoff"]
    unknown = json.loads(loom_cli("support", "ask", "shop", "What is the airspeed of an unladen swallow?", "--json").stdout)
    assert unknown["handoff"] and unknown["citations"] == []
    handoffs = json.loads(loom_cli("support", "handoffs", "shop", "--json").stdout)
    assert [h["question"] for h in handoffs] == ["What is the airspeed of an unladen swallow?"]
    long_question = loom_cli("support", "ask", "shop", "refund " * 2000, "--json")  # 14k characters
    assert json.loads(long_question.stdout)["answer"]


def test_follow_up_uses_history(shop, loom_home):
    env = dict(os.environ, LOOM_HOME=str(loom_home))
    proc = subprocess.run([sys.executable, "-m", "loom", "support", "chat", "shop"], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=120,
                          input="What if an item arrives damaged?\nhow many hours do I have for that?\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    answers = [block for block in proc.stdout.split("Sources:") if block.strip()]
    assert "48 hours" in answers[1]  # "that" resolved through the previous question


def test_retrieval_eval_reports_three_modes(shop, loom_home, tmp_path):
    qa = tmp_path / "qa.jsonl"
    rows = [{"question": "parcel arrived broken, what now", "source": "policy.md", "contains": "damaged"},
            {"question": "refund duration", "source": "faq.csv"},
            {"question": "laptop warranty", "source": "warranty.html"}]
    qa.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    report = json.loads(loom_cli("eval", "retrieval", "shop", "--qa", str(qa), "--json").stdout)
    assert set(report["results"]) == {"hybrid", "bm25", "dense"} and report["questions"] == 3
    assert report["results"]["hybrid"]["recall@5"] == 1.0
    assert set(report["results"]["dense"]) == {"recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "x"}\n', encoding="utf-8")
    proc = loom_cli("eval", "retrieval", "shop", "--qa", str(bad), check=False)
    assert proc.returncode == 2 and "question" in proc.stderr


def test_chinese_kb_uses_a_chinese_encoder(tmp_path, loom_home):
    doc = tmp_path / "zh.md"
    doc.write_text("# 退货政策\n\n商品签收后七天内可以无理由退货。退货时请保持商品完好。\n\n# 配送\n\n我们使用顺丰快递，一般两到三天送达。\n",
                   encoding="utf-8")
    loom_cli("kb", "create", "zh")  # encoder auto
    loom_cli("kb", "add", "zh", str(doc))
    assert json.loads(loom_cli("kb", "show", "zh", "--json").stdout)["encoder"] == "e5"
    hits = json.loads(loom_cli("kb", "search", "zh", "快递多久能到", "--json").stdout)
    assert "顺丰" in hits[0]["text"]
    answer = json.loads(loom_cli("support", "ask", "zh", "买了东西不想要了能退吗？", "--json").stdout)
    assert "七天" in answer["answer"] and not answer["handoff"]


def test_killed_ingestion_leaves_a_consistent_kb(tmp_path, loom_home):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        body = "\n\n".join(f"Paragraph {j} of file {i}: the warehouse in town {i} stores item {j} on shelf {i * j}." for j in range(30))
        (folder / f"f{i:02d}.txt").write_text(body, encoding="utf-8")
    loom_cli("kb", "create", "big", "--encoder", "minilm")
    env = dict(os.environ, LOOM_HOME=str(loom_home))
    proc = subprocess.Popen([sys.executable, "-m", "loom", "kb", "add", "big", str(folder)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_path = loom_home / "kb" / "big.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a few files are in, mid-way through the rest
        with sqlite3.connect(db_path) as db:
            if db.execute("SELECT COUNT(*) FROM documents").fetchone()[0] >= 3:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db_path) as db:
        docs = db.execute("SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents").fetchone()
        chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        fts = db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert 3 <= docs[0] < 40 and docs[1] == chunks == fts  # whole files only: no orphan or missing chunks
    hits = json.loads(loom_cli("kb", "search", "big", "warehouse in town 1", "--json").stdout)
    assert hits
    finish = loom_cli("kb", "add", "big", str(folder))  # resumes: committed files are skipped
    assert f"{docs[0]} unchanged" in finish.stderr and f"{40 - docs[0]} added" in finish.stderr


def test_kb_over_http_and_support_as_a_chat_model(tmp_path, docs):
    import httpx
    import openai

    from conftest import LiveServer

    server = LiveServer(tmp_path / "served")
    try:
        api = server.url + "/v1/kb"
        assert httpx.post(api, json={"name": "shop", "encoder": "minilm"}).status_code == 200
        added = httpx.post(f"{api}/shop/documents", timeout=120, json={
            "documents": [{"source": "policy.md", "text": POLICY}, {"source": "faq.csv", "text": FAQ}]}).json()
        assert len(added["added"]) == 2 and added["chunks"] > 4 and added["failed"] == []
        pdf = _minimal_pdf(["Every laptop comes with a two year warranty."])  # bytes, so PDFs work over HTTP
        uploaded = httpx.post(f"{api}/shop/files", timeout=120, files=[
            ("files", ("warranty.html", (docs / "warranty.html").read_bytes(), "text/html")),
            ("files", ("laptops.pdf", pdf, "application/pdf"))]).json()
        assert uploaded["added"] == ["warranty.html", "laptops.pdf"] and uploaded["failed"] == []
        assert "path" not in httpx.get(f"{api}/shop").json()  # the server's folders are not shown
        hits = httpx.post(f"{api}/shop/search", json={"query": "parcel arrived broken", "k": 2}).json()["data"]
        assert hits[0]["source"] == "policy.md" and "dense" in hits[0]["scores"]
        assert [k["name"] for k in httpx.get(api).json()["data"]] == ["shop"]
        missing = httpx.post(f"{api}/nope/search", json={"query": "x"})
        assert missing.status_code == 404 and missing.json()["error"]["message"]
        assert httpx.post(api, json={"name": "../evil"}).status_code == 400

        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        assert "support:shop" in {m.id for m in client.models.list()}
        reply = client.chat.completions.create(model="support:shop", messages=[{"role": "user", "content": "What if my item arrives damaged?"}])
        message = reply.choices[0].message
        assert "photo" in message.content and "[1]" in message.content and "Sources:" in message.content
        assert message.model_extra["citations"][0]["source"] == "policy.md"
        chunks = list(client.chat.completions.create(model="support:shop", stream=True, messages=[
            {"role": "user", "content": "What if my item arrives damaged?"}, {"role": "assistant", "content": message.content},
            {"role": "user", "content": "how many hours do I have for that?"}]))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "48 hours" in streamed
        final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
        assert final.choices[0].delta.model_extra["citations"]
        deleted = httpx.delete(f"{api}/shop/documents", params={"source": "policy.md"}).json()
        assert deleted["removed_chunks"] > 0
        assert httpx.delete(f"{api}/shop").json()["deleted"] and httpx.get(f"{api}/shop").status_code == 404
    finally:
        server.stop()


def _minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with text lines in Helvetica, written by hand (offsets computed)."""
    text = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
               f"<< /Length {len(text)} >>\nstream\n{text}\nendstream", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode() + b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_pdf_and_docx_are_read(tmp_path, loom_home):
    import docx

    (tmp_path / "manual.pdf").write_bytes(_minimal_pdf(["The blender has three speed settings.", "Clean the jar with warm water."]))
    document = docx.Document()
    document.add_heading("Opening hours", level=1)
    document.add_paragraph("The store opens at nine and closes at six on weekdays.")
    document.save(tmp_path / "hours.docx")
    loom_cli("kb", "create", "files", "--encoder", "minilm")
    assert "2 added" in loom_cli("kb", "add", "files", str(tmp_path / "manual.pdf"), str(tmp_path / "hours.docx")).stderr
    pdf_hit = json.loads(loom_cli("kb", "search", "files", "blender speeds", "--json").stdout)[0]
    assert pdf_hit["source"].endswith("manual.pdf") and "three speed" in pdf_hit["text"] and pdf_hit["title"] == "page 1"
    docx_hit = json.loads(loom_cli("kb", "search", "files", "when does the store close", "--json").stdout)[0]
    assert docx_hit["source"].endswith("hours.docx") and docx_hit["title"] == "Opening hours"


def test_concurrent_writers_leave_a_consistent_kb(tmp_path, loom_home):
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    for folder, word in ((run_a, "apple"), (run_b, "banana")):
        folder.mkdir()
        for i in range(8):
            (folder / f"{word}{i}.txt").write_text("\n\n".join(f"The {word} crate {i} holds {j} pieces of {word}." for j in range(20)),
                                                    encoding="utf-8")
    loom_cli("kb", "create", "shared", "--encoder", "minilm")
    env = dict(os.environ, LOOM_HOME=str(loom_home))
    procs = [subprocess.Popen([sys.executable, "-m", "loom", "kb", "add", "shared", str(f)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for f in (run_a, run_b)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with sqlite3.connect(loom_home / "kb" / "shared.sqlite") as db:
        docs, declared = db.execute("SELECT COUNT(*), SUM(chunks) FROM documents").fetchone()
        assert docs == 16 and declared == db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        assert db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == declared


def test_enormous_file_is_refused_by_name(tmp_path, loom_home, monkeypatch):
    from loom.data import readers

    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 10_000)  # the real limit is 200 MiB; the rule is the same
    (tmp_path / "huge.txt").write_text("word " * 5_000, encoding="utf-8")
    (tmp_path / "small.txt").write_text("A small and perfectly normal file about opening hours.", encoding="utf-8")
    loom_cli("kb", "create", "sizes", "--encoder", "minilm")
    proc = loom_cli("kb", "add", "sizes", str(tmp_path / "huge.txt"), str(tmp_path / "small.txt"))
    assert "1 added" in proc.stderr and "huge.txt" in proc.stderr and "limit" in proc.stderr
