"""Images and scans (issue 31): `loom ocr`, scanned PDFs and photos into knowledge bases with page and
region, bad files refused before anything is written, and image parts in chat. Every image is
rendered here with a CJK font (the dev extra's Noto Sans CJK, or the system's)."""

from __future__ import annotations

import base64
import io
import json
import struct
import sys
import unicodedata
import zlib
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer, asgi_body, copy_catalog, loom_cli, run_loom

NOTICE_ZH = ["退货政策：收到商品后七天内可以无理由退货。", "退款会在三个工作日内原路返回。"]
NOTICE_EN = ["Returns: unused items may be sent back within 7 days.", "Support hotline 400-820-1234, 9:00 to 18:00."]


def cjk_font(size: int):
    from PIL import ImageFont

    for path in (Path(sys.prefix) / "NotoSansCJKtc-Regular.otf",  # pip: cvttf-notosanscjk-regular (dev extra)
                 Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")):
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    pytest.skip("no CJK font: pip install cvttf-notosanscjk-regular")


def render(lines: list[str], size: int = 26, width: int = 900, gap: float = 1.7, at: tuple[int, int] = (30, 30), image=None):
    from PIL import Image, ImageDraw

    font = cjk_font(size)
    image = image or Image.new("RGB", (width, int(at[1] * 2 + len(lines) * size * gap)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((at[0], at[1] + i * size * gap), line, font=font, fill="black")
    return image


def png_bytes(image, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kw)
    return out.getvalue()


def accuracy(read: str, truth: str) -> float:
    """1 - edit distance / length, whitespace removed, NFKC (full-width punctuation = half-width)."""
    a, b = (unicodedata.normalize("NFKC", "".join(t.split())) for t in (read, truth))
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return 1 - row[-1] / max(1, len(b))


def bomb_png(side: int = 30_000) -> bytes:
    """A PNG header claiming side x side pixels (900 MP) with a few bytes of data: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def test_ocr_cli_reads_chinese_and_english_as_text_markdown_and_json(tmp_path, loom_home):
    notice = render(NOTICE_ZH + NOTICE_EN)
    (tmp_path / "notice.png").write_bytes(png_bytes(notice))
    tilted = notice.rotate(4, expand=True, fillcolor="white")  # a photo taken slightly askew, saved as JPEG
    (tmp_path / "tilted.jpg").write_bytes(png_bytes(tilted, "JPEG", quality=60))
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo: pixels stored on their side, the EXIF tag says turn 90 degrees to view
    (tmp_path / "phone.jpg").write_bytes(png_bytes(notice.rotate(90, expand=True), "JPEG", quality=85, exif=exif.tobytes()))
    (tmp_path / "sideways.png").write_bytes(png_bytes(notice.rotate(-90, expand=True)))  # a page scanned on its side
    truth = "".join(NOTICE_ZH + NOTICE_EN)

    files = [str(tmp_path / f) for f in ("notice.png", "tilted.jpg", "phone.jpg", "sideways.png")]
    lines = loom_cli("ocr", *files, "-f", "json").stdout.splitlines()
    assert len(lines) == 4  # JSON Lines: one object per file, printed as each is read
    for line in lines:
        page = json.loads(line)["pages"][0]
        assert page["source"] == "ocr" and accuracy(page["text"], truth) >= 0.95, page["text"]
        assert all(0 < ln["confidence"] <= 1 and len(ln["box"]) == 4 for ln in page["lines"])
    first = json.loads(lines[0])["pages"][0]
    assert [p["text"][:4] for p in first["paragraphs"]][0] == "退货政策"  # reading order: top line first

    md = loom_cli("ocr", str(tmp_path / "notice.png"), "--format", "md").stdout
    assert md.startswith("# notice.png") and "七天内" in md

    (tmp_path / "notes.png").write_text("not an image", encoding="utf-8")
    failed = loom_cli("ocr", str(tmp_path / "notes.png"), str(tmp_path / "notice.png"), check=False)
    assert failed.returncode == 1 and "notes.png is not an image" in failed.stderr and "退货" in failed.stdout
    assert loom_cli("ocr", str(tmp_path / "notice.png"), "--pages", "2", check=False).returncode == 1


def test_two_columns_and_a_table_are_read_in_order(tmp_path, loom_home):
    from PIL import Image

    left = ["第一栏：本店所有商品均提供正规发票，", "发票会随包裹一起寄出，请妥善保管。", "如需电子发票，请在下单时备注说明。",
            "发票抬头一经开具不能修改。"]
    right = ["第二栏：会员积分可以在下次购物时抵扣，", "每一百积分抵扣一元，积分有效期一年。", "积分不能兑换现金，也不能转让他人。",
             "退货时已使用的积分将按比例扣回。"]
    table = [["商品", "价格", "库存"], ["苹果", "5元", "120"], ["香蕉", "3元", "80"]]
    page = Image.new("RGB", (1300, 760), "white")
    render(["会员与发票说明"], size=30, at=(480, 30), image=page)
    render(left, size=24, at=(40, 110), image=page)
    render(right, size=24, at=(680, 110), image=page)
    for r, row in enumerate(table):
        for c, cell in enumerate(row):
            render([cell], size=24, at=(60 + 300 * c, 440 + 60 * r), image=page)
    (tmp_path / "page.png").write_bytes(png_bytes(page))

    read = json.loads(loom_cli("ocr", str(tmp_path / "page.png"), "-f", "json").stdout)["pages"][0]
    text = "".join(read["text"].split())
    order = [text.find(s) for s in ("会员与发票说明", "第一栏", "发票抬头", "第二栏", "按比例扣回")]
    assert -1 not in order and order == sorted(order), read["text"]  # title, then the left column, then the right
    rows = [p["cells"] for p in read["paragraphs"] if p["kind"] == "row"]
    assert rows == table, read["paragraphs"]


def _image_pdf(pages: list) -> bytes:
    out = io.BytesIO()
    pages[0].save(out, format="PDF", save_all=True, append_images=pages[1:], resolution=150)
    return out.getvalue()


def test_scans_into_a_kb_with_page_region_cache_and_mixed_pdfs(tmp_path, loom_home):
    import pypdfium2 as pdfium

    from test_kb import _minimal_pdf

    returns = render(["退货政策", "收到商品后七天内可以无理由退货，退款三个工作日内原路返回。"], width=1240)
    warranty = render(["保修条款", "所有电器保修一年，电池保修六个月，保修期内免费维修。"], width=1240)
    (tmp_path / "scan.pdf").write_bytes(_image_pdf([returns, warranty]))  # image-only pages: no text layer
    mixed = pdfium.PdfDocument(_minimal_pdf(["Delivery takes two days in the city and five days elsewhere."]))
    mixed.import_pages(pdfium.PdfDocument(_image_pdf([warranty])))  # page 1 typed, page 2 scanned
    buffer = io.BytesIO()
    mixed.save(buffer)
    (tmp_path / "mixed.pdf").write_bytes(buffer.getvalue())
    (tmp_path / "photo.webp").write_bytes(png_bytes(render(NOTICE_EN), "WEBP", quality=80))

    loom_cli("kb", "create", "shop", "--encoder", "minilm")
    added = loom_cli("kb", "add", "shop", str(tmp_path / "scan.pdf"), str(tmp_path / "mixed.pdf"), str(tmp_path / "photo.webp"))
    assert "3 added" in added.stderr and "0 failed" in added.stderr, added.stderr
    hit = json.loads(loom_cli("kb", "search", "shop", "电池保修多久", "--json").stdout)[0]
    assert "六个月" in hit["text"] and hit["page"] == 2 and hit["title"] == "page 2" and hit["scanned"]
    x0, y0, x1, y1 = hit["regions"][0]
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 0.5  # the text sits in the top half of the page
    typed = json.loads(loom_cli("kb", "search", "shop", "how long does delivery take", "--json").stdout)[0]
    assert typed["source"].endswith("mixed.pdf") and typed["page"] == 1 and "two days" in typed["text"]
    assert not typed["scanned"]  # its text layer was read: no OCR, no preview

    from loom.apps.support.store import KnowledgeBase

    jpeg = KnowledgeBase("shop").page_image(hit["source"], 2)
    assert jpeg[:3] == b"\xff\xd8\xff"  # the scanned page is kept as a preview for citations
    cache = list((loom_home / "cache" / "ocr").glob("*.json"))
    assert len(cache) == 3  # one per scanned file (the typed page needs no OCR)
    again = loom_cli("ocr", str(tmp_path / "scan.pdf"), "-p", "2")  # served from the cache
    assert "六个月" in again.stdout


BAD_FILES = {
    "empty.png": (b"", "empty"),
    "truncated.png": (None, "damaged or truncated"),
    "bomb.png": (bomb_png(), "over the 60 MP limit"),
    "archive.png": (b"PK\x03\x04" + b"\x00" * 200, "ZIP archive"),
    "notes.png": ("这不是图片".encode(), "not an image"),
    "image.txt": (None, "holds a PNG image"),
    "huge.pdf": (None, "5,000 pages, over the 500-page limit"),
}


def _bad(name: str) -> bytes:
    data, _ = BAD_FILES[name]
    if data is not None:
        return data
    if name == "huge.pdf":
        from pypdf import PdfWriter

        writer, out = PdfWriter(), io.BytesIO()
        for _ in range(5000):
            writer.add_blank_page(72, 72)
        writer.write(out)
        return out.getvalue()
    good = png_bytes(render(["truncated"], size=20, width=300))
    return good[: len(good) // 2] if name == "truncated.png" else good


async def vision_engine(scope, receive, send):
    """A remote 'vision model': answers with what it received, so the test sees the parts arrive unchanged."""
    if scope["type"] != "http":
        return
    body = await asgi_body(receive)
    parts = json.loads(body)["messages"][-1]["content"]
    seen = " ".join(p["type"] + (":" + p["image_url"]["url"][:22] if p["type"] == "image_url" else "") for p in parts)
    events = [{"choices": [{"index": 0, "delta": {"content": seen}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]  # Loom streams from remote engines
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
                + b"data: [DONE]\n\n"})


@pytest.fixture(scope="module")
def server(served_home, tmp_path_factory):
    import threading
    import time

    import uvicorn

    from loom.serve.process import free_port

    port = free_port()
    engine = uvicorn.Server(uvicorn.Config(vision_engine, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    while not engine.started:
        time.sleep(0.05)
    home = tmp_path_factory.mktemp("media_home")
    copy_catalog(served_home, home)
    run_loom("models", "add", "vl", f"http://127.0.0.1:{port}/v1", "--backend", "openai", "--vision", env_home=home)
    live = LiveServer(home)
    yield live
    live.stop()
    engine.should_exit = True
    thread.join(timeout=10)


def test_bad_files_are_400s_that_name_the_problem_and_leave_the_kb_unchanged(server):
    api = server.url + "/v1/kb"
    assert httpx.post(api, json={"name": "shop", "encoder": "minilm"}).status_code == 200
    before = httpx.get(f"{api}/shop").json()
    for name, (_, words) in BAD_FILES.items():
        reply = httpx.post(f"{api}/shop/files", timeout=120, files=[
            ("files", ("ok.md", b"# Hours\n\nOpen nine to six.", "text/markdown")),
            ("files", (name, _bad(name), "image/png"))])
        assert reply.status_code == 400, (name, reply.text)
        assert words in reply.json()["error"]["message"], (name, reply.json())
    after = httpx.get(f"{api}/shop").json()
    assert after["documents"] == before["documents"] == 0 and after["chunks"] == 0  # nothing half-ingested

    scan = png_bytes(render(NOTICE_ZH))
    good = httpx.post(f"{api}/shop/files", timeout=120, files=[("files", ("notice.png", scan, "image/png"))]).json()
    assert good["added"] == ["notice.png"] and good["chunks"] >= 1
    hit = httpx.post(f"{api}/shop/search", json={"query": "退款多久到账", "k": 1}).json()["data"][0]
    assert hit["source"] == "notice.png" and hit["page"] == 1 and len(hit["regions"][0]) == 4
    page = httpx.get(f"{api}/shop/pages", params={"source": "notice.png", "page": 1})
    assert page.status_code == 200 and page.headers["content-type"] == "image/jpeg"
    assert httpx.get(f"{api}/shop/pages", params={"source": "notice.png", "page": 9}).status_code == 404


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_image_parts_in_chat_are_read_by_ocr_or_passed_to_a_vision_model(server):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    image = _data_url(png_bytes(render(NOTICE_EN)))
    ask = [{"role": "user", "content": [{"type": "text", "text": "What does this notice say?"},
                                        {"type": "image_url", "image_url": {"url": image}}]}]
    reply = client.chat.completions.create(model="slow", messages=ask, max_tokens=4)  # 'slow': a 4k context
    plain = client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "What does this notice say?"}],
                                           max_tokens=4)
    seen = reply.model_extra["loom"]["images"]
    assert seen[0]["handled"] == "ocr" and seen[0]["characters"] > 60 and "OCR" in reply.model_extra["loom"]["note"]
    assert reply.usage.prompt_tokens > plain.usage.prompt_tokens + 20  # the image's text reached the model

    stream = client.chat.completions.create(model="slow", messages=ask, max_tokens=4, stream=True)
    first = next(iter(stream))
    assert first.model_extra["loom"]["images"][0]["handled"] == "ocr"
    stream.close()

    vision = client.chat.completions.create(model="vl", messages=ask)
    assert vision.choices[0].message.content == "text image_url:data:image/png;base64,"  # unchanged for a VLM

    bad = {"http": "https://example.com/cat.png", "file": "file:///etc/passwd",
           "broken": _data_url(png_bytes(render(["x"], size=20, width=200))[:60]), "bomb": _data_url(bomb_png()),
           "not base64": "data:image/png,rawbytes"}
    for what, url in bad.items():
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="nano", max_tokens=2, messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
        assert e.value.body["param"] == "messages[0].content[0].image_url.url", (what, e.value.body)
        if what == "http":
            assert "does not fetch image URLs" in e.value.body["message"]


def test_summarize_reads_its_input_from_an_image(server):
    image = _data_url(png_bytes(render(NOTICE_EN + ["Refunds are paid back to the original card within 3 days."])))
    reply = httpx.post(server.url + "/v1/summarize", json={"image": image, "sentences": 1}, timeout=120)
    assert reply.status_code == 200, reply.text
    assert "Returns" in reply.json()["ocr"]["text"] and reply.json()["summary"].strip()
    both = httpx.post(server.url + "/v1/summarize", json={"image": image, "input": "text"})
    assert both.status_code == 400 and "not both" in both.json()["error"]["message"]
    blank = _data_url(png_bytes(render([], width=300)))
    empty = httpx.post(server.url + "/v1/summarize", json={"image": blank}, timeout=120)
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "image"


def test_tesseract_engine_reads_or_says_how_to_install_it(tmp_path, loom_home):
    import shutil

    (tmp_path / "notice.png").write_bytes(png_bytes(render(NOTICE_EN, size=30)))
    read = loom_cli("ocr", str(tmp_path / "notice.png"), "--engine", "tesseract", check=False)
    if shutil.which("tesseract"):
        assert read.returncode == 0 and accuracy(read.stdout, "".join(NOTICE_EN)) >= 0.9, read.stdout
    else:
        assert read.returncode == 1 and "apt install tesseract-ocr" in read.stderr
    bad = loom_cli("ocr", str(tmp_path / "notice.png"), "--engine", "paddle", check=False)
    assert bad.returncode == 1 and "unknown OCR engine 'paddle'" in bad.stderr
