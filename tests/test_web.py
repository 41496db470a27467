"""The web pages in a real browser: Playwright driving Debian's headless Chromium (no browser
download) against a real `loom serve`. Screenshots go to test-artifacts/web/."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import REPO, LiveServer, copy_catalog, home_at, loom_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (apt-get install chromium)")]
ARTIFACTS = REPO / "test-artifacts" / "web"
POLICY = ("# Returns\n\nYou can return any item within 30 days of delivery.\n\n## Damaged items\n\n"
          "If an item arrives damaged, send us a photo within 48 hours and we will send a replacement at no cost.\n")


@pytest.fixture(scope="module")
def site(served_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("web_home")
    copy_catalog(served_home, home)
    data = home / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"great lovely room {i},pos\nawful dirty room {i},neg\n" for i in range(10)), encoding="utf-8")
    old = os.environ.get("LOOM_HOME")
    os.environ["LOOM_HOME"] = str(home)
    try:
        loom_cli("finetune", "classify", "--data", str(data), "--base", "tfidf", "--name", "reviews")
    finally:
        os.environ["LOOM_HOME"] = old or ""
    server = LiveServer(home, "--preload", "slow")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # a fake microphone (a tone) that needs no permission prompt: the record buttons are tested for real
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                                                                     "--use-fake-device-for-media-stream"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.url + "/")
    page.wait_for_function("document.getElementById('chat-model').options.length > 0")
    yield page
    context.close()
    assert not errors, errors  # no uncaught JavaScript errors


def test_chat_streams_a_reply_and_offers_code(page):
    page.select_option("#chat-model", "slow")
    page.fill("#chat-max", "12")
    page.fill("#chat-input", "hello there")
    page.click("#chat-send")
    page.wait_for_function("document.querySelectorAll('#chat-log .msg').length === 2 && "
                           "document.querySelector('#chat-log .msg.assistant').textContent.length > 0 && "
                           "!document.getElementById('chat-send').disabled")
    page.click("#copy-python")
    assert "client.chat.completions.create(model=\"slow\"" in page.text_content("#chat-code")
    page.screenshot(path=str(ARTIFACTS / "chat.png"))
    page.fill("#chat-input", "")
    page.click("#chat-send")
    assert page.text_content("#error") == "Please type something first."


MULTIPLY_TOOL = [{"type": "function", "function": {"name": "multiply", "description": "Multiply two numbers", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99}, "b": {"type": "integer", "minimum": 0, "maximum": 99}},
    "required": ["a", "b"], "additionalProperties": False}}}]


def test_playground_tool_calls_structured_output_and_token_probabilities(page):
    """The chat's Advanced settings: a forced tool call shown as a block, its result typed in and sent
    back, the reply that follows; then a JSON Schema reply rendered as token spans with probabilities.
    'slow' (4,096-token context) fits the generic tool prompt that nano's 128 tokens cannot."""
    import json

    page.select_option("#chat-model", "slow")
    page.click("#chat-advanced summary")
    page.fill("#chat-schema", "{not json")
    page.fill("#chat-input", "What is 12 times 7?")
    page.click("#chat-send")
    assert "JSON Schema" in page.text_content("#error") and page.locator("#chat-log .msg").count() == 0  # nothing sent
    page.fill("#chat-schema", "")
    page.fill("#chat-tools", json.dumps(MULTIPLY_TOOL))
    page.select_option("#chat-tool-choice", "fn:multiply")  # a named choice: exactly one call, whatever the random model likes
    page.fill("#chat-max", "300")
    page.click("#chat-send")
    page.wait_for_selector("#chat-log .tool-call .tool-result-input", timeout=120_000)
    call = page.locator("#chat-log .msg.assistant .tool-call")
    assert call.count() == 1 and "multiply" in call.locator(".tool-name").text_content()
    args = json.loads(call.locator(".tool-args").text_content())
    assert set(args) == {"a", "b"}
    page.click("#copy-python")
    code = page.text_content("#chat-code")
    assert "tools=[{" in code and "tool_choice={\"type\": \"function\"" in code and "False" in code  # Python literals
    page.select_option("#chat-tool-choice", "none")  # the follow-up answers in text
    page.fill("#chat-max", "12")
    call.locator(".tool-result-input").fill('{"product": 84}')
    call.locator(".tool-send").click()
    page.wait_for_function("""() => {
        const log = [...document.querySelectorAll('#chat-log .msg')];
        const result = log.findIndex((m) => m.classList.contains('tool'));
        return result > 0 && log.length === result + 2 && log[result + 1].classList.contains('assistant') &&
               log[result + 1].textContent.length > 0 && !document.getElementById('chat-send').disabled;
    }""", timeout=120_000)
    assert '"product": 84' in page.text_content("#chat-log .msg.tool") and page.text_content("#error") == ""

    page.fill("#chat-tools", "")
    page.fill("#chat-schema", json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                                          "additionalProperties": False}))
    page.check("#chat-logprobs")
    page.fill("#chat-max", "40")
    page.fill("#chat-input", "Is it 84?")
    page.click("#chat-send")
    page.wait_for_function("document.querySelectorAll('#chat-log .msg.assistant').length === 3 && "
                           "!document.getElementById('chat-send').disabled", timeout=120_000)
    last = page.locator("#chat-log .msg.assistant").last
    assert isinstance(json.loads(last.text_content())["ok"], bool)  # the schema held
    spans = last.locator(".tok")
    assert spans.count() > 0 and "".join(spans.all_text_contents()) == last.text_content()
    title = spans.first.get_attribute("title")
    assert title.startswith("p = ") and "top: " in title
    page.click("#copy-curl")
    assert '"logprobs":true,"top_logprobs":5' in page.text_content("#chat-code") and '"json_schema"' in page.text_content("#chat-code")
    page.screenshot(path=str(ARTIFACTS / "playground.png"))


def test_knowledge_base_from_an_uploaded_file_answers_with_a_citation(page, tmp_path):
    page.click("[data-tab=kb]")
    page.fill("#kb-new", "shop")
    page.click("#kb-create")
    page.wait_for_function("document.getElementById('kb-name').value === 'shop'")
    doc = tmp_path / "policy.md"
    doc.write_text(POLICY, encoding="utf-8")
    page.set_input_files("#kb-files", str(doc))
    page.wait_for_function("document.getElementById('kb-status').textContent.includes('1 uploaded')", timeout=60_000)
    page.click("#kb-docs button")  # the file's chunks, as indexed
    page.wait_for_selector("#kb-chunks li")
    assert "Returns > Damaged items: If an item arrives damaged" in page.text_content("#kb-chunks")
    import docx  # a Word file goes up as bytes (multipart) and is read on the server

    word = docx.Document()
    word.add_paragraph("Gift cards never expire and can be used in every store.")
    word.save(tmp_path / "gifts.docx")
    page.set_input_files("#kb-files", str(tmp_path / "gifts.docx"))
    page.wait_for_function("[...document.querySelectorAll('#kb-docs tr')].some((li) => li.textContent.includes('gifts.docx'))",
                           timeout=60_000)
    assert "dense" in kb_search(page, "parcel arrived broken")
    # 🎤 records a spoken note into the KB: the recording goes up as a file named by its time (the fake
    # microphone's tone holds no words, so the server may report it as empty: either way it names the file)
    page.click("#kb-mic")
    page.wait_for_function("document.getElementById('kb-mic').classList.contains('recording')")
    page.wait_for_timeout(1500)
    with page.expect_response("**/v1/kb/shop/files", timeout=120_000) as sent:
        page.click("#kb-mic")
    assert sent.value.status == 200  # the page sent it (a recording was once refused by the page's own type list)
    page.wait_for_function("document.getElementById('kb-status').textContent.includes('recording-') || "
                           "[...document.querySelectorAll('#kb-docs tr')].some((r) => r.textContent.includes('recording-'))",
                           timeout=120_000)
    assert "file type is not supported" not in page.text_content("#kb-status")
    kb_ask_and_cite(page, "What if my item arrives damaged?")
    assert "photo" in page.text_content("#kb-cited-text") and page.is_visible("#kb-cited-text")
    page.fill("#kb-question", "how many hours do I have for that?")  # a follow-up, understood through the history
    page.click("#kb-ask-form button")
    page.wait_for_function("kbHistory.length === 4")  # both turns went to the assistant, with the first answer
    assert "48 hours" in page.text_content("#kb-answer")
    assert "best passage" in page.text_content("#kb-answer-meta")  # how the answer was made, with its confidence
    page.screenshot(path=str(ARTIFACTS / "kb.png"))
    page.click("#kb-new-conversation")
    page.fill("#kb-question", "What is the capital of Australia?")  # nothing in the KB: said plainly, not answered
    page.click("#kb-ask-form button")
    page.wait_for_function("document.getElementById('kb-answer-meta').textContent.includes('Handed off to a person')")
    odd = tmp_path / "tool.exe"
    odd.write_bytes(b"MZ")
    page.set_input_files("#kb-files", str(odd))  # refused in the page: not a type a KB reads
    page.wait_for_function("document.getElementById('error').textContent.includes('not supported')")
    bad = tmp_path / "image.png"
    bad.write_bytes(b"\x89PNG")
    page.set_input_files("#kb-files", str(bad))  # images go up now: the server's 400 names the problem
    page.wait_for_function("document.getElementById('error').textContent.includes('image.png is not an image or PDF')")



def test_classifier_labels_a_text(page):
    page.click("[data-tab=classify]")
    page.select_option("#cls-model", "reviews")
    page.fill("#cls-input", "what a lovely great room")
    page.click("#cls-run")
    page.wait_for_selector("#cls-results tr:nth-child(2)")
    assert page.text_content("#cls-results tr:nth-child(2) td:nth-child(2)") == "pos"
    assert page.is_visible("#cls-download")
    assert page.locator("#cls-explain mark.pos").count() > 0  # the words that pushed it, highlighted
    page.screenshot(path=str(ARTIFACTS / "classify.png"))


def test_summary_appears(page):
    page.click("[data-tab=writing]")
    page.fill("#w-input", "The council approved a transport plan on Monday. It adds forty electric buses. "
                          "Residents worried about noise. The first buses run in spring.")
    page.fill("#w-sentences", "2")
    page.click("#w-run")
    page.wait_for_function("document.getElementById('w-output').textContent.length > 10")
    assert page.text_content("#w-output").count(".") == 2
    page.screenshot(path=str(ARTIFACTS / "writing.png"))


def test_report_page_renders_the_report(page, tmp_path):
    page.click("[data-tab=writing]")
    page.select_option("#w-task", "report")
    page.click("#w-run")
    assert page.text_content("#error") == "Choose a .csv or .json data file first."
    data = tmp_path / "sales.csv"
    data.write_text('city,sales\nBeijing,10\n"Shanghai, Pudong",30\nBeijing,20\n', encoding="utf-8")
    page.set_input_files("#w-data", str(data))
    page.click("#w-run")
    page.wait_for_selector("#w-report:not([hidden])")
    assert "sales: mean 20" in page.text_content("#w-output")
    report = page.frame_locator("#w-report").locator("body").inner_text()
    assert "Statistics" in report and "Beijing" in report  # quoted CSV field parsed; the top city named


def test_training_run_loss_curve(page, site):
    import json

    run = site.home / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"step": 10, "loss": 5.0}, {"step": 20, "loss": 4.0}, {"step": 20, "val_loss": 4.5}, {"step": 30, "loss": 3.2}]) + "\n")
    page.click("[data-tab=models]")
    page.click("#models-refresh")
    page.click("#runs-table button:text('demo')")
    page.wait_for_selector("#run-chart polyline")
    assert page.locator("#run-chart polyline").count() == 2 and "demo" in page.text_content("#run-caption")
    page.screenshot(path=str(ARTIFACTS / "runs.png"))


def test_evaluation_report_with_confusion_matrix(page, site, tmp_path):
    data = tmp_path / "test.csv"
    data.write_text("text,label\nlovely great room,pos\nawful dirty room,neg\ngreat room but dirty,neg\n", encoding="utf-8")
    old = os.environ.get("LOOM_HOME")
    os.environ["LOOM_HOME"] = str(site.home)
    try:
        loom_cli("eval", "classify", "reviews", "--data", str(data))
    finally:
        os.environ["LOOM_HOME"] = old or ""
    page.click("[data-tab=models]")
    page.click("#models-refresh")
    page.click("#evals-table button")
    page.wait_for_function("document.getElementById('eval-confusion').naturalWidth > 0")
    assert "pos" in page.text_content("#eval-classes") and "neg" in page.text_content("#eval-classes")
    page.screenshot(path=str(ARTIFACTS / "eval.png"))


def test_language_switch_and_phone_width(page):
    page.click("#lang")
    assert page.text_content("[data-tab=chat]") == "对话" and page.get_attribute("html", "lang") == "zh-CN"
    page.set_viewport_size({"width": 390, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
    page.screenshot(path=str(ARTIFACTS / "zh-phone.png"))
    page.click("#lang")
    assert page.text_content("[data-tab=chat]") == "Chat"


def test_keys_page_for_admins(browser, site, tmp_path):
    server = LiveServer(_home_copy(site.home, tmp_path))
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        page.goto(server.url + "/#keys")
        page.click("[data-tab=keys]")
        page.fill("#key-name", "first-admin")
        page.click("#keys-form button")  # no keys yet: the first key made here is an admin key
        page.wait_for_selector("#key-secret:not([hidden])")
        secret = page.text_content("#key-secret").split()[-1]
        assert secret.startswith("loom-") and page.input_value("#api-key") == secret  # the page now uses it
        page.wait_for_selector("#keys-table tr:nth-child(2)")
        assert "first-admin" in page.text_content("#keys-table") and "✓" in page.text_content("#keys-table")
        stranger = context.browser.new_context(locale="en-US").new_page()  # no key stored: the Keys page is closed
        stranger.goto(server.url + "/")
        stranger.click("[data-tab=keys]")
        stranger.wait_for_selector("#keys-denied:not([hidden])")
        assert not stranger.is_visible("#keys-table")
        stranger.context.close()
        page.screenshot(path=str(ARTIFACTS / "keys.png"))
    finally:
        context.close()
        server.stop()


def kb_search(page, query: str, wait: str = "#kb-hits li") -> str:
    """Search on the KB page; the first hit's text."""
    page.fill("#kb-query", query)
    page.click("#kb-search-form button")
    page.wait_for_selector(wait)
    return page.text_content("#kb-hits li")


def kb_ask_and_cite(page, question: str) -> None:
    """Ask on the KB page, wait for the answer's citation and open it."""
    page.fill("#kb-question", question)
    page.click("#kb-ask-form button")
    page.wait_for_selector("#kb-answer button.cite", timeout=60_000)
    page.click("#kb-answer button.cite")


def _home_copy(home, tmp_path):
    copy = tmp_path / "home"
    copy.mkdir()
    shutil.copy(home / "models.json", copy / "models.json")
    return copy


def test_forms_explain_bad_input(page, tmp_path):
    page.click("[data-tab=classify]")
    page.click("#cls-run")
    assert page.text_content("#error") == "Please type something first."
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"word " * (6 * 1024 * 1024 // 5))  # over the 4 MB upload limit
    page.set_input_files("#cls-file", str(huge))
    page.wait_for_function("document.getElementById('error').textContent.includes('too large')")
    page.click("[data-tab=writing]")
    page.fill("#w-input", "hello")
    page.select_option("#w-task", "translate")
    page.fill("#w-glossary", "only-one-column")
    page.click("#w-run")
    assert "source,target" in page.text_content("#error")
    assert "Traceback" not in page.content()


def test_training_from_the_page_then_chat_with_the_result(page, site, tmp_path):
    """The Train tab: upload conversations, start an SFT job on 'nano', watch the loss curve fill in,
    see the job finish, evaluate it on its held-out answers, then chat with the tuned model."""
    import json

    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in [("ping", "pong"), ("hello", "world"), ("red", "blue")]] * 10
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    page.click("[data-tab=train]")
    page.wait_for_function("document.getElementById('train-base').options.length > 0")
    page.select_option("#train-kind", "sft")
    page.select_option("#train-base", "nano")
    page.fill("#train-name", "webtuned")
    page.set_input_files("#train-data", str(data))
    page.fill("#train-steps", "150")
    page.fill("#train-lr", "0.003")
    page.uncheck("#train-lora")
    page.click("#train-start")
    page.wait_for_selector("#train-job:not([hidden])")
    page.wait_for_selector("#train-state[data-status=finished]", timeout=120_000)
    assert page.locator("#train-chart polyline").count() == 2  # train and validation curves
    assert "full" in page.text_content("#train-result")
    page.screenshot(path=str(ARTIFACTS / "train.png"))
    page.click("#train-eval")
    page.wait_for_function("document.getElementById('train-result').textContent.includes('%')", timeout=60_000)
    page.click("#train-chat")
    page.wait_for_selector("#chat:not([hidden])")
    assert page.input_value("#chat-model") == "webtuned"
    page.fill("#chat-temp", "0")  # greedy: the answer the tuned model learnt, not a sampled end-of-turn
    page.fill("#chat-input", "ping")
    page.click("#chat-send")
    page.wait_for_function("document.querySelectorAll('#chat-log .msg.assistant').length > 0 && "
                           "!document.getElementById('chat-send').disabled", timeout=60_000)
    assert page.locator("#chat-log .msg.assistant").last.text_content().strip() != ""


def test_a_training_job_can_be_stopped(page, site, tmp_path):
    import json

    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}) + "\n"
                            for i in range(40)), encoding="utf-8")
    page.click("[data-tab=train]")
    page.wait_for_function("document.getElementById('train-base').options.length > 0")
    page.select_option("#train-base", "nano")
    page.fill("#train-name", "endless")
    page.set_input_files("#train-data", str(data))
    page.fill("#train-steps", "100000")
    page.click("#train-start")
    page.wait_for_selector("#train-state[data-status=running]")
    page.wait_for_function("document.querySelectorAll('#train-chart polyline').length > 0", timeout=60_000)
    page.click("#train-stop")
    page.wait_for_selector("#train-state[data-status=stopped]", timeout=60_000)
    assert "endless" in page.text_content("#train-jobs")


def test_recommendations_with_reasons_for_a_user_items_and_a_text(page, site, tmp_path):
    from test_recommend import write_data

    inter, items, _ = write_data(tmp_path, users_per_theme=6)
    old = os.environ.get("LOOM_HOME")
    os.environ["LOOM_HOME"] = str(site.home)
    try:
        loom_cli("recommend", "train", "--data", str(inter), "--items", str(items), "--model", "hybrid", "--name", "shows")
    finally:
        os.environ["LOOM_HOME"] = old or ""
    page.click("[data-tab=recommend]")
    page.wait_for_function("document.getElementById('rec-name').options.length > 0 && "
                           "document.getElementById('rec-users').options.length > 0")
    page.fill("#rec-user", "cooking-fan-1")
    page.fill("#rec-k", "3")
    page.click("#rec-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#rec-results tr').length === 4")
    table = page.text_content("#rec-results")
    assert table.count("Cooking") >= 3 and "because you liked" in table
    assert page.text_content("#rec-route") == "From this user's history"
    page.screenshot(path=str(ARTIFACTS / "recommend.png"))
    page.fill("#rec-user", "")
    page.fill("#rec-items", "football-1, football-2")
    page.click("#rec-form button[type=submit]")
    page.wait_for_function("document.getElementById('rec-route').textContent === 'From the items you listed'")
    assert page.text_content("#rec-results").count("Football") >= 3
    page.fill("#rec-text", "rockets and astronauts")
    page.click("#rec-similar-form button[type=submit]")
    page.wait_for_function("document.getElementById('rec-route').textContent === 'Closest item texts'")
    assert "Space" in page.text_content("#rec-results tr:nth-child(2)")
    page.click("#lang")
    page.click("#rec-form button[type=submit]")
    page.wait_for_function("document.getElementById('rec-route').textContent === '根据你列出的物品'")
    assert "因为你喜欢" in page.text_content("#rec-results")
    page.click("#lang")
    page.fill("#rec-items", "")
    page.click("#rec-form button[type=submit]")
    assert page.text_content("#error") == "Pick a user or type some liked items."


def test_graph_from_a_knowledge_base_drawn_and_traced_to_its_source(page, site):
    import httpx

    kb = httpx.post(site.url + "/v1/kb", json={"name": "towns", "encoder": "minilm"}, timeout=60)
    kb.raise_for_status()
    httpx.post(site.url + "/v1/kb/towns/documents", timeout=120, json={"documents": [
        {"source": "companies.md", "text": "# Companies\n\n马云于1999年在杭州创立了阿里巴巴。阿里巴巴的总部位于杭州。\n"},
        {"source": "places.md", "text": "# Places\n\n杭州位于浙江。Paris is the capital of France.\n"}]}).raise_for_status()
    page.click("[data-tab=graph]")
    page.wait_for_function("[...document.getElementById('kg-kb').options].some((o) => o.value === 'towns')")
    page.select_option("#kg-kb", "towns")
    page.click("#kg-build")
    page.wait_for_function("document.getElementById('kg-name').value === 'towns' && "
                           "document.getElementById('kg-status').textContent.includes('relations')")
    page.fill("#kg-query", "杭州")
    page.click("#kg-search-form button[type=submit]")
    page.wait_for_selector("#kg-view .node.center")
    names = page.eval_on_selector_all("#kg-view .node", "nodes => nodes.map(n => n.dataset.name)")
    assert set(names) >= {"杭州", "阿里巴巴", "浙江", "马云"}
    facts = page.text_content("#kg-facts")
    assert "阿里巴巴 —headquartered in→ 杭州" in facts and "companies.md" in facts and "阿里巴巴的总部位于杭州。" in facts
    page.screenshot(path=str(ARTIFACTS / "graph.png"))
    page.click("#kg-view .node[data-name='浙江']")  # walk the graph: 浙江 becomes the centre
    page.wait_for_function("document.getElementById('kg-title').textContent.startsWith('浙江')")
    assert "places.md" in page.text_content("#kg-facts")
    page.fill("#kg-query", "")
    page.click("#kg-search-form button[type=submit]")
    assert page.text_content("#error") == "Please type something first."


# ---- the chat page (issue 34): default model, Markdown, kept conversations, Stop / Regenerate, layout ----
