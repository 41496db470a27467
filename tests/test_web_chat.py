"""The chat page in headless Chromium: images dropped into chat and scans cited on their page (issue
31), the default model preselected for a new user, Markdown rendered safely, conversations kept in
the browser, Stop and Regenerate, and a layout that fills the window on desktop and phone (issue 34.1).
Uses test_web's fixtures (a live server and a browser for this module)."""

from __future__ import annotations

import os

from conftest import REPO, home_at, loom_cli
from test_web import ARTIFACTS, browser, kb_ask_and_cite, kb_search, page, pytestmark, site  # noqa: F401  (fixtures; browser marker, skipped without chromium)


REPO_AUDIO = REPO / "tests" / "assets" / "audio"


def _notice(path, lines: list[str]):
    """A PNG of printed English lines (Pillow's own font: no font package needed), for OCR to read."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=28)
    image = Image.new("RGB", (760, 60 + 48 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((30, 30 + 48 * i), line, font=font, fill="black")
    image.save(path)
    return path


# A file handed to the page as the browser would: dropped (a drag's DataTransfer) or pasted (the clipboard's).
HAND_OVER = """([kind, data, name, type]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type }));
    const input = document.getElementById('chat-input');
    input.dispatchEvent(kind === 'drop' ? new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true })
                                        : new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true, cancelable: true }));
}"""


def test_chat_sends_a_dropped_image_read_by_ocr(page, tmp_path):
    """An image dropped on the message box and another pasted become chips (one removed again); a
    non-image is refused by name; the sent message shows its thumbnail, and the reply says that the
    text-only model got the image's text by OCR."""
    import base64

    data = base64.b64encode(_notice(tmp_path / "hours.png", ["Opening hours 9 to 18"]).read_bytes()).decode()
    page.select_option("#chat-model", "slow")  # a 4,096-token context holds the image's text
    page.fill("#chat-max", "4")
    page.evaluate(HAND_OVER, ["drop", data, "hours.png", "image/png"])
    page.evaluate(HAND_OVER, ["paste", data, "image.png", "image/png"])
    page.wait_for_function("document.querySelectorAll('#chat-images .chip img').length === 2")
    page.click("#chat-images .chip:nth-child(2) button")  # the ×
    assert page.locator("#chat-images .chip").count() == 1
    (tmp_path / "notes.txt").write_text("not a picture", encoding="utf-8")
    page.set_input_files("#chat-file", str(tmp_path / "notes.txt"))  # the 📎 button's file picker
    page.wait_for_function("document.getElementById('error').textContent.includes('notes.txt: only images')")
    assert page.locator("#chat-images .chip").count() == 1
    page.fill("#chat-input", "When is the shop open?")
    page.click("#chat-send")
    page.wait_for_selector("#chat-log .msg.assistant .ocr-note", timeout=60_000)
    assert page.locator("#chat-log .msg.user img.thumb").count() == 1 and not page.is_visible("#chat-images")
    assert "When is the shop open?" in page.text_content("#chat-log .msg.user")
    note = page.text_content("#chat-log .ocr-note")
    assert note.startswith("Image text read by OCR (") and "cannot see pictures" in note and "(0 characters)" not in note
    page.screenshot(path=str(ARTIFACTS / "chat-image.png"))
    page.click("#copy-curl")  # the image's base64 is cut short in the code, and says so
    code = page.text_content("#chat-code")
    assert '"image_url":{"url":"data:image/png;base64,<' in code and "KB of base64 left out>" in code


def test_scanned_notice_in_a_kb_is_cited_with_its_page_and_shown_there(page, tmp_path):
    """A PNG notice uploaded on the KB page is read by OCR; the answer's citation names its page and
    opens the page's preview with the cited passage highlighted; Escape closes it."""
    notice = _notice(tmp_path / "notice.png", ["Opening hours: 9 to 18 every day.", "Returns are accepted within 30 days."])
    page.click("[data-tab=kb]")
    page.fill("#kb-new", "scans")
    page.click("#kb-create")
    page.wait_for_function("document.getElementById('kb-name').value === 'scans'")
    page.set_input_files("#kb-files", str(notice))
    page.wait_for_function("document.getElementById('kb-status').textContent.includes('1 uploaded')", timeout=60_000)
    assert page.text_content("#error") == ""
    assert "page 1" in kb_search(page, "opening hours", wait="#kb-hits li .show-page")
    kb_ask_and_cite(page, "What are the opening hours?")
    assert "page 1" in page.text_content("#kb-cited-where") and "9 to 18" in page.text_content("#kb-cited-text")
    page.click("#kb-cited-where .show-page")
    page.wait_for_function("document.getElementById('page-view').open && document.getElementById('page-view-img').naturalWidth > 0")
    marks = page.locator("#page-view-box .hl")
    assert marks.count() >= 1
    img, mark = page.locator("#page-view-img").bounding_box(), marks.first.bounding_box()
    assert mark["width"] > 0 and mark["height"] > 0  # the box lies on the picture
    assert img["x"] - 1 <= mark["x"] and mark["x"] + mark["width"] <= img["x"] + img["width"] + 1
    assert img["y"] - 1 <= mark["y"] and mark["y"] + mark["height"] <= img["y"] + img["height"] + 1
    page.screenshot(path=str(ARTIFACTS / "kb-scan.png"))
    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('page-view').open")


def _chat_page(browser, site, width=1280, height=860, locale="en-US"):
    """A new visitor's chat page (an empty browser profile), its model list loaded; uncaught errors collected."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.url + "/")
    page.wait_for_function("document.getElementById('chat-model').options.length > 0")
    return context, page, errors


def _seed_conversation(page, messages, title="Seeded"):
    """A conversation put in the browser's storage as the page keeps them, then the page reloaded."""
    page.evaluate("""([messages, title]) => {
        localStorage.setItem('loom-chat:seed', JSON.stringify({ title, model: 'slow', system: '', updated: 1, messages }));
        localStorage.setItem('loom-chats', JSON.stringify([{ id: 'seed', title, model: 'slow', updated: 1 }]));
        localStorage.setItem('loom-chat-current', 'seed');
    }""", [messages, title])
    page.reload()
    page.wait_for_function("document.getElementById('chat-model').options.length > 0")


def _stored_conversation(page):
    return page.evaluate("JSON.parse(localStorage.getItem('loom-chat:' + localStorage.getItem('loom-chat-current')))")


REPLIED = ("!document.getElementById('chat-send').disabled && "
           "document.querySelectorAll('#chat-log .msg.assistant').length === {n} && "
           "document.querySelectorAll('#chat-log .msg.assistant')[{n} - 1].textContent.trim().length > 0")


def test_new_chinese_user_gets_the_default_chat_model_and_a_streamed_reply(browser, site):
    """A first visit from a Chinese browser: every model picker (chat, writing, train's base) starts on
    the catalog's default chat model (`loom models default`), not on the list's first entry; a question
    typed in Chinese and sent with Enter is answered by a streamed reply and listed under its words."""
    settings = site.home / "settings.json"
    before = settings.read_text(encoding="utf-8") if settings.exists() else None
    with home_at(site.home):
        loom_cli("models", "default", "slow")
    context, page, errors = _chat_page(browser, site, locale="zh-CN")
    try:
        assert page.eval_on_selector("#chat-model", "s => s.options[0].value") != "slow"  # preselected, not first by chance
        assert page.input_value("#chat-model") == "slow"
        offered = page.eval_on_selector("#chat-model", "s => [...s.options].filter((o) => o.disabled).map((o) => o.textContent)")
        assert any(o.startswith("qwen2.5-1.5b (未安装: loom models pull qwen2.5-1.5b") for o in offered), offered  # not pulled here
        assert page.text_content("[data-tab=chat]") == "对话" and "Enter 发送" in page.get_attribute("#chat-input", "placeholder")
        page.fill("#chat-max", "12")
        question = "杭州今天适合去西湖散步吗？"
        page.fill("#chat-input", question)
        with page.expect_response("**/v1/chat/completions") as response:
            page.press("#chat-input", "Enter")
        assert response.value.headers["content-type"].startswith("text/event-stream")
        page.wait_for_function(REPLIED.format(n=1), timeout=60_000)
        assert page.text_content("#chat-log .msg.user") == question and page.input_value("#chat-input") == ""
        assert page.text_content("#chat-list li[aria-current=true] .chat-open") == question
        stored = _stored_conversation(page)
        assert stored["model"] == "slow" and [m["role"] for m in stored["messages"]] == ["user", "assistant"]
        page.screenshot(path=str(ARTIFACTS / "chat-zh-new-user.png"))
        page.click("[data-tab=writing]")
        assert page.input_value("#w-model") == "slow"
        page.click("[data-tab=train]")
        page.wait_for_function("document.getElementById('train-base').options.length > 0")
        assert page.input_value("#train-base") == "slow"
    finally:
        context.close()
        if before is None:
            settings.unlink(missing_ok=True)
        else:
            settings.write_text(before, encoding="utf-8")
    assert not errors, errors


MARKDOWN_REPLY = ("## Steps\n\n1. Install it\n2. Run **loom** with `--help`\n\n- one\n- two\n  - nested *item*\n\n"
                  "```python\nprint('<b>hi</b>')\n```\n\n"
                  "<img src=x onerror=\"window.pwned=1\"> See [the site](https://example.com/docs) or [this](javascript:window.pwned=2).")


def test_replies_render_markdown_safely_with_copy_buttons(browser, site):
    """A reply's Markdown is rendered (heading, lists, code block with its language, link) while its
    HTML shows as text and runs nothing; the code block and the reply each have a Copy button."""
    context, page, errors = _chat_page(browser, site)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    try:
        rendered = page.evaluate("loomMarkdown('<script>alert(1)</script> **b** `<i>`')")
        assert rendered == "<p>&lt;script&gt;alert(1)&lt;/script&gt; <strong>b</strong> <code>&lt;i&gt;</code></p>"
        _seed_conversation(page, [{"role": "user", "content": "How do I start?"},
                                  {"role": "assistant", "content": MARKDOWN_REPLY}])
        reply = page.locator("#chat-log .msg.assistant")
        assert reply.locator("h2").text_content() == "Steps"
        assert reply.locator("ol > li").count() == 2 and reply.locator("ol strong").text_content() == "loom"
        assert reply.locator("ol code").text_content() == "--help"
        assert reply.locator("ul > li").count() == 3 and reply.locator("ul ul em").text_content() == "item"
        assert reply.locator("pre code.language-python").text_content() == "print('<b>hi</b>')"
        link = reply.locator("a")
        assert link.count() == 1 and link.get_attribute("href") == "https://example.com/docs"
        assert link.get_attribute("target") == "_blank" and "noopener" in link.get_attribute("rel")
        assert reply.locator("img, script, b").count() == 0  # the model's HTML is text
        assert '<img src=x onerror="window.pwned=1">' in reply.text_content() and "this." in reply.text_content()
        assert page.evaluate("window.pwned") is None
        copy = reply.locator(".code-block button.copy-code")
        copy.click()
        page.wait_for_function("document.querySelector('.code-block button.copy-code').textContent === 'Copied'")
        assert page.evaluate("navigator.clipboard.readText()") == "print('<b>hi</b>')"
        page.click("#chat-log .msg-actions .copy-msg")  # the whole reply, as Markdown
        assert page.evaluate("navigator.clipboard.readText()") == MARKDOWN_REPLY
        page.screenshot(path=str(ARTIFACTS / "chat-markdown.png"))
    finally:
        context.close()
    assert not errors, errors


def test_conversations_are_kept_listed_reopened_and_deleted(browser, site):
    """Conversations live in the browser: a reload brings the open one back (its model too), a new
    one is listed above it, the first can be reopened, and deleting empties the list."""
    context, page, errors = _chat_page(browser, site)

    def ask(text, n):
        page.fill("#chat-input", text)
        page.click("#chat-send")
        page.wait_for_function(REPLIED.format(n=n), timeout=60_000)

    try:
        page.select_option("#chat-model", "slow")
        page.fill("#chat-max", "6")
        ask("first question about rivers", 1)
        ask("and a follow-up", 2)
        page.reload()
        page.wait_for_function("document.querySelectorAll('#chat-log .msg').length === 4")
        assert page.locator("#chat-log .msg.user").all_text_contents() == ["first question about rivers", "and a follow-up"]
        assert page.locator("#chat-list .chat-open").all_text_contents() == ["first question about rivers"]
        page.wait_for_function("document.getElementById('chat-model').value === 'slow'")
        page.fill("#chat-max", "6")
        page.click("#chat-new")
        assert page.locator("#chat-log .msg").count() == 0
        ask("a second conversation", 1)
        assert page.locator("#chat-list .chat-open").all_text_contents() == ["a second conversation", "first question about rivers"]
        page.click("#chat-list li:nth-child(2) .chat-open")
        assert page.locator("#chat-log .msg.user").all_text_contents() == ["first question about rivers", "and a follow-up"]
        assert page.get_attribute("#chat-list li:nth-child(2)", "aria-current") == "true"
        page.click("#chat-list li:nth-child(1) .chat-delete")  # the other one
        assert page.locator("#chat-list .chat-open").all_text_contents() == ["first question about rivers"]
        assert page.locator("#chat-log .msg").count() == 4
        page.click("#chat-list li:nth-child(1) .chat-delete")  # the open one: a new, empty conversation
        assert page.locator("#chat-list li").count() == 0 and page.locator("#chat-log .msg").count() == 0
        assert page.is_visible("#chat-none")
        page.reload()
        page.wait_for_function("document.getElementById('chat-model').options.length > 0")
        assert page.locator("#chat-log .msg").count() == 0
        assert page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('loom-chat:')).length") == 0
        kept = page.evaluate("""() => storedMessages([{ role: 'user', content: [{ type: 'text', text: 'look' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,' + 'A'.repeat(IMAGE_KEEP) } },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }], IMAGE_KEEP)[0].content""")
        assert kept[1] == {"type": "text", "text": "[image not kept: too large for the browser's storage]"}
        assert kept[2]["image_url"]["url"].endswith("AAAA")  # a small image is kept
        page.evaluate("""() => { // the browser's storage is full: the chat goes on, unsaved, and says so
            const real = Storage.prototype.setItem;
            Storage.prototype.setItem = function (key, value) {
                if (key.startsWith('loom-chat')) throw new DOMException('full', 'QuotaExceededError');
                return real.call(this, key, value);
            };
        }""")
        page.fill("#chat-max", "6")
        ask("is there room?", 1)
        assert "storage is full" in page.text_content("#error") and page.locator("#chat-list li").count() == 0
    finally:
        context.close()
    assert not errors, errors


def test_stop_keeps_the_partial_reply_and_regenerate_replaces_it(browser, site):
    """Stop ends the stream (the server cancels the generation) and keeps what came; Send is back.
    Regenerate drops that reply and asks again: one reply, a new one."""
    import time

    context, page, errors = _chat_page(browser, site)
    try:
        cancelled = site.metric("loom_cancelled_sequences_total")
        page.select_option("#chat-model", "slow")  # never stops early
        page.fill("#chat-max", "3000")
        page.fill("#chat-input", "tell me a long story")
        page.click("#chat-send")
        # Stop in the same tick as the reply is seen growing (no gap in which a busy machine could end it).
        # The random 'slow' model can still sample an end-of-turn token early (~1 reply in 12 within 120
        # tokens): a reply that ended by itself is asked again, up to three times.
        for _ in range(3):
            try:
                state = page.wait_for_function("""() => {
                    const reply = document.querySelector('#chat-log .msg.assistant');
                    const send = document.getElementById('chat-send');
                    if (reply && !send.disabled) return 'ended';
                    if (!reply || reply.textContent.length <= 20) return false;
                    const buttons = ['chat-send', 'chat-regen', 'chat-stop'].map((id) => document.getElementById(id).disabled);
                    document.getElementById('chat-stop').click();
                    return buttons.concat([document.getElementById('error').textContent]);
                }""", timeout=60_000).json_value()
            except Exception as e:  # the page's state says why (an error shown, a wrong model)
                raise AssertionError(f"{e}: error {page.text_content('#error')!r}, model {page.input_value('#chat-model')!r}, "
                                     f"log {page.inner_html('#chat-log')[:1500]!r}") from e
            if state != "ended":
                break
            page.click("#chat-regen")
        assert state[:3] == [True, True, False], state  # while streaming: Send and Regenerate off, Stop on
        page.wait_for_function("!document.getElementById('chat-send').disabled")
        assert page.is_disabled("#chat-stop") and page.is_enabled("#chat-regen")
        deadline = time.time() + 20
        while time.time() < deadline and site.metric("loom_cancelled_sequences_total") == cancelled:
            time.sleep(0.1)
        assert site.metric("loom_cancelled_sequences_total") == cancelled + 1
        partial = _stored_conversation(page)["messages"]
        assert [m["role"] for m in partial] == ["user", "assistant"] and len(partial[1]["content"]) > 0
        page.fill("#chat-max", "5")
        page.evaluate("document.querySelector('#chat-log .msg.assistant').dataset.old = '1'")
        page.click("#chat-regen")
        page.wait_for_function(REPLIED.format(n=1) + " && !document.querySelector('#chat-log .msg[data-old]')", timeout=60_000)
        again = _stored_conversation(page)["messages"]
        assert [m["role"] for m in again] == ["user", "assistant"] and again[1]["content"] != partial[1]["content"]
        assert page.locator("#chat-log .msg.user").count() == 1
    finally:
        context.close()
    assert not errors, errors


def test_chat_fills_the_window_on_desktop_and_phone(browser, site):
    """The transcript takes the window's height, the message box pinned under it, at 1280 x 860 and at
    390 x 844; a wide code block or table scrolls inside the reply, never the page sideways."""
    wide = "x = '" + "0123456789" * 30 + "'"
    messages = [{"role": "user", "content": "a wide one please " + "long" * 50},
                {"role": "assistant", "content": f"Here:\n\n```python\n{wide}\n```\n\n| a | b |\n|---|---|\n| {'c' * 200} | d |"}]
    for width, height, tall in ((1280, 860, 500), (390, 844, 300)):
        context, page, errors = _chat_page(browser, site, width, height)
        try:
            _seed_conversation(page, messages)
            log, form = page.locator("#chat-log").bounding_box(), page.locator("#chat-form").bounding_box()
            assert log["height"] > tall, (width, log)
            assert log["y"] + log["height"] <= form["y"] + 1 and form["y"] + form["height"] <= height, (width, log, form)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert page.eval_on_selector("#chat-log pre", "p => p.scrollWidth > p.clientWidth")  # scrolls in its box
            assert page.is_visible("#chat-pick") == (width < 1000) and page.is_visible("#chat-list li") == (width >= 1000)
            assert page.is_visible("#chat-max") == (width >= 1000)  # on a phone the settings fold away
            page.screenshot(path=str(ARTIFACTS / f"chat-{width}x{height}.png"))
            if width < 1000:
                page.click("#chat-settings summary")
                assert page.is_visible("#chat-max") and page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            context.close()
        assert not errors, errors



def test_voice_messages_recorded_or_picked_are_transcribed_into_the_box(browser, page, site, tmp_path):
    """🎵 sends a recording to /v1/audio/transcriptions (whisper-1) and its text lands in the message
    box; 🎤 records from the microphone (here Chromium's fake one, playing a WAV) until pressed again."""
    import wave

    from test_web import CHROMIUM

    from loom.media.audio import decode_audio

    clip = REPO_AUDIO / "en_short.ogg"
    page.set_input_files("#chat-audio-file", str(clip))
    page.wait_for_function("document.getElementById('chat-input').value.toLowerCase().includes('meeting notes')", timeout=60_000)
    samples = decode_audio(clip).samples
    mic = tmp_path / "mic.wav"
    with wave.open(str(mic), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    chromium = browser.browser_type.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}"])
    try:
        context = chromium.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
        context.grant_permissions(["microphone"], origin=site.url)
        talk = context.new_page()
        talk.goto(site.url + "/")
        talk.wait_for_function("document.getElementById('chat-model').options.length > 0")
        talk.click("#chat-mic")
        talk.wait_for_function("document.getElementById('chat-mic').classList.contains('recording')")
        talk.wait_for_timeout(3500)
        talk.click("#chat-mic")
        talk.wait_for_function("document.getElementById('chat-input').value.toLowerCase().includes('meeting notes')", timeout=60_000)
        assert talk.text_content("#error").strip() == ""
    finally:
        chromium.close()
