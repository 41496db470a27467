"""Customer-service answer quality (issue 14): calibrated hand-off, one-passage extractive answers,
checked generated answers, and `loom eval support` on the benchmark KB (bench/data/support)."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, home_at, loom_cli

DATA = REPO / "bench" / "data" / "support" / "shop"


@pytest.fixture(scope="module")
def lumio_file(tmp_path_factory):
    """The benchmark's shop, built once: bilingual FAQ, a Chinese speaker manual, an English vacuum manual (e5)."""
    home = tmp_path_factory.mktemp("lumio_home")
    with home_at(home):
        loom_cli("kb", "create", "lumio")
        loom_cli("kb", "add", "lumio", str(DATA / "kb"))
    return home / "kb" / "lumio.sqlite"


@pytest.fixture
def lumio(lumio_file, loom_home):
    """A private copy of it in this test's LOOM_HOME (tests write hand-offs and calibration to it)."""
    import shutil

    (loom_home / "kb").mkdir(parents=True)
    for part in lumio_file.parent.glob("lumio.sqlite*"):  # with any write-ahead log not yet checkpointed
        shutil.copy(part, loom_home / "kb" / part.name)
    return loom_home


def ask(question: str, *extra: str) -> dict:
    return json.loads(loom_cli("support", "ask", "lumio", question, "--json", *extra).stdout)


def test_out_of_scope_questions_are_handed_off_and_answers_cite_one_passage(lumio):
    stock = ask("你们公司的股票代码是多少？")  # the example: was answered from two unrelated FAQ passages
    assert stock["handoff"] and stock["mode"] == "handoff" and not stock["citations"] and stock["confidence"] < 0.5
    network = ask("音箱连不上网怎么办？")  # was the right paragraph plus the payment-methods FAQ
    assert not network["handoff"] and len(network["citations"]) == 1
    assert network["citations"][0]["source"].endswith("manual_zh.md") and "2.4GHz" in network["answer"]
    assert "支付宝" not in network["answer"]
    english = ask("How often should I replace the filter?")
    assert "3 months" in english["answer"] and english["citations"][0]["source"].endswith("manual_en.md")
    assert ask("Can you recommend a good movie?")["handoff"]
    strict = ask("How often should I replace the filter?", "--min-score", "5")  # the bar is the operator's to raise
    assert strict["handoff"]
    handed = json.loads(loom_cli("support", "handoffs", "lumio", "--json").stdout)
    assert {"你们公司的股票代码是多少？", "Can you recommend a good movie?"} <= {h["question"] for h in handed}


def test_eval_support_meets_the_targets_on_the_benchmark_set(lumio):
    report = json.loads(loom_cli("eval", "support", "lumio", "--qa", str(DATA / "qa.jsonl"),
                                 "--oos", str(DATA / "oos.jsonl"), "--json").stdout)
    assert report["questions"] == 68 and report["oos_questions"] == 32 and report["encoder"] == "e5"
    for lang in ("zh", "en"):
        s = report["by_language"][lang]
        assert s["accuracy"] >= 0.9 and s["handoff_rate"] <= 0.1, (lang, s)
        # 16 Chinese out-of-scope questions, 6 of them near the shop's subject ("can the speaker be a PC mic?"):
        # the cross-validated rule answers 2 of those and one far one, so per language the bar is 0.8, overall 0.9
        assert s["oos_handoff_recall"] >= 0.8 and s["citation_correct"] >= 0.95, (lang, s)
    assert report["overall"]["oos_handoff_recall"] >= 0.9, report["overall"]
    assert len(report["results"]) == 100 and report["errors"] == [r for r in report["results"] if r in report["errors"]]
    assert json.loads(loom_cli("support", "handoffs", "lumio", "--json").stdout) == []  # eval turns are not logged
    table = loom_cli("eval", "support", "lumio", "--qa", str(DATA / "qa.jsonl")).stdout
    assert "accuracy" in table and "zh" in table and "en" in table


def test_eval_support_names_a_bad_question_file(lumio, tmp_path):
    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"question": "退货要多久？"}\n', encoding="utf-8")
    proc = loom_cli("eval", "support", "lumio", "--qa", str(bad), check=False)
    assert proc.returncode != 0 and "qa.jsonl has no usable rows" in proc.stderr and "answer" in proc.stderr
    missing = loom_cli("eval", "support", "lumio", "--qa", str(tmp_path / "none.jsonl"), check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr


class Scripted:
    """A chat backend that always says the same thing: stands in for a small model's output."""

    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply, self.prompts = reply, []

    def stream(self, request):
        from loom.backends.base import Chunk

        self.prompts.append(request.messages)
        yield Chunk(self.reply)
        yield Chunk("", "stop", 10, 5)


@pytest.mark.parametrize("reply, shown", [
    ("The filter should be replaced every 3 months.", True),
    ("1", False),  # what the old numbered-passages prompt got from qwen2.5-0.5b
    ("[1]", False),
    ("", False),
    ("Replace the filter every 6 months.", False),  # a fact the passage sentence does not hold, the right one dropped
    ("Yes, you should replace the filter.", False),  # adds nothing the passage says
    ("I don't know.", False),
])
def test_generated_answers_are_checked_against_the_passage(lumio, reply, shown):
    from loom.apps.support.answer import SupportTurn
    from loom.apps.support.store import KnowledgeBase

    model = Scripted(reply)
    turn = SupportTurn(KnowledgeBase("lumio"), "How often should I replace the filter?", generator=model)
    text = "".join(turn)
    assert len(turn.citations) == 1 and turn.citations[0]["source"].endswith("manual_en.md")
    if shown:
        assert turn.mode == "generated" and text == reply + " [1]" and not turn.fallback
    else:
        assert turn.mode == "extractive" and turn.fallback and "3 months" in text
    prompt = model.prompts[0][-1]["content"]
    assert prompt.startswith("Passage: ") and "replace it every 3 months" in prompt and "[1]" not in prompt


def test_faq_matches_skip_the_model_and_chinese_prompts_are_chinese(lumio):
    from loom.apps.support.answer import SupportTurn
    from loom.apps.support.store import KnowledgeBase

    kb = KnowledgeBase("lumio")
    model = Scripted("音箱只支持2.4GHz的Wi-Fi，不支持5GHz网络。")
    turn = SupportTurn(kb, "音箱支持5G的WiFi吗？", generator=model)
    assert "2.4GHz" in "".join(turn) and turn.mode == "generated"
    assert model.prompts[0][-1]["content"].startswith("资料：")
    faq_model = Scripted("should not be used")
    faq = SupportTurn(kb, "退款多久到账？", generator=faq_model)  # the FAQ's own question
    assert "3-5个工作日" in "".join(faq) and faq.mode == "faq" and not faq_model.prompts


def test_calibration_is_per_kb_and_refreshed_when_content_changes(lumio, tmp_path):
    from loom.apps.support import answerable
    from loom.apps.support.store import KnowledgeBase

    kb = KnowledgeBase("lumio")
    first = answerable.anchors(kb)
    dense = first["dense"]
    assert set(dense) == {"zh", "en"} and dense["zh"][0] > dense["en"][0]  # e5 rates Chinese off-topic questions higher
    assert all(own > off + 0.05 for off, own in dense.values())  # the KB's own questions sit well above
    assert json.loads(kb.meta("answerability"))["anchors"] == first  # kept in the KB file
    extra = tmp_path / "more.md"
    extra.write_text("# Gift cards\nGift cards never expire and work in every Lumio store.\n", encoding="utf-8")
    loom_cli("kb", "add", "lumio", str(extra))
    assert json.loads(kb.meta("answerability"))["stamp"] != f"{answerable._VERSION}:{kb.generation()}:e5"  # stale until the next question
    answerable.anchors(kb)
    assert json.loads(kb.meta("answerability"))["stamp"] == f"{answerable._VERSION}:{kb.generation()}:e5"


def test_a_manual_added_english_first_gets_a_chinese_encoder_and_answers_colloquial_questions(tmp_path, loom_home):
    """bench/data/support/ebike, a manual with no FAQ, added one file at a time with the English one first:
    'auto' chose MiniLM for it, so the Chinese manual arriving next moves the KB to e5 (all vectors made
    again) instead of staying unreadable. Then colloquial questions in both languages are answered from
    the right section (an error code picks its own row of the table), and questions about things the
    manual never mentions are handed off."""
    manual = REPO / "bench" / "data" / "support" / "ebike" / "kb"
    loom_cli("kb", "create", "bike")
    loom_cli("kb", "add", "bike", str(manual / "manual_en.md"))
    assert json.loads(loom_cli("kb", "show", "bike", "--json").stdout)["encoder"] == "minilm"
    loom_cli("kb", "add", "bike", str(manual / "manual_zh.md"))
    assert json.loads(loom_cli("kb", "show", "bike", "--json").stdout)["encoder"] == "e5"

    def ask_bike(question: str) -> dict:
        return json.loads(loom_cli("support", "ask", "bike", question, "--json").stdout)

    for question, phrase in [("骑了一个大长坡之后屏幕跳出E04，咋办", "控制器过热"), ("电瓶多久充满", "5.5小时"),
                             ("I bought it last month and now the screen shows E03, what's wrong", "Brake sensor fault")]:
        answer = ask_bike(question)
        assert not answer["handoff"] and phrase in answer["answer"], (question, answer)
    for question in ["Who is your CEO?", "可乐鸡翅怎么做？"]:
        assert ask_bike(question)["handoff"], question
    # close to the manual by similarity (payments), but about things it never mentions
    financing = ask_bike("Do you offer financing or monthly payments on the bike?")
    assert financing["handoff"] and "never mentions" in financing["why"], financing


def test_a_plain_text_list_of_short_chinese_lines_answers_from_the_right_line(tmp_path, loom_home):
    """A stranger's shop notice: a .txt of eight unrelated one-line statements with no blank lines.
    It used to be one chunk, so every answer started with the opening-hours line and most questions
    were handed off. Each line is now a chunk of its own; jieba's different cuts of the same
    characters (停车 in the question, 停车场 in the notice) still count as the question's words."""
    notice = tmp_path / "notice.txt"
    notice.write_text("本店营业时间为每天上午九点到晚上十点，节假日照常营业。\n商场地下一层有停车场，购物满一百元可免费停车两小时。\n"
                      "会员每消费一元积一分，一百积分可以抵扣一元现金。\n退货需在购买后七天内凭小票办理，生鲜食品不支持退货。\n"
                      "本店支持微信、支付宝和银行卡付款，暂不收外币。\n儿童游乐区在三楼，开放时间为上午十点到晚上八点。\n"
                      "大件商品满五百元可免费送货上门，限市区范围。\n遗失物品请到一楼服务台登记领取。\n", encoding="utf-8")
    loom_cli("kb", "create", "mall")
    added = loom_cli("kb", "add", "mall", str(notice))
    assert "8 chunks" in added.stdout + added.stderr

    def ask_mall(question: str) -> dict:
        return json.loads(loom_cli("support", "ask", "mall", question, "--json").stdout)

    for question, line in [("停车收费吗？", "停车场"), ("积分怎么用？", "一百积分"), ("可以用支付宝吗？", "支付宝"),
                           ("买的东西不想要了能退吗？", "七天内")]:
        answer = ask_mall(question)
        assert not answer["handoff"] and line in answer["answer"], (question, answer)
        assert "营业时间" not in answer["answer"] or line == "营业时间", answer  # one line, not the whole notice
    assert ask_mall("你们卖手机吗？")["handoff"] and ask_mall("附近有地铁站吗？")["handoff"]


def test_hard_wrapped_prose_in_a_txt_stays_one_passage(tmp_path):
    """Lines that end mid-sentence are wrapped prose, not a list: they are packed as before."""
    from loom.apps.support.chunking import chunk_blocks
    from loom.data.readers import read_document

    prose = tmp_path / "prose.txt"
    prose.write_text("The warranty covers the battery and the motor for two years from the\n"
                     "date of purchase, and the frame for five years, as long as the bike\n"
                     "has been serviced once a year by an authorised shop.\n", encoding="utf-8")
    chunks = chunk_blocks(read_document(prose))
    assert len(chunks) == 1 and "authorised shop." in chunks[0].text


class Judge:
    """A chat backend that answers the reader's yes/no with fixed odds, as llama.cpp reports them (logprobs)."""

    name = "judge"

    def __init__(self, p_yes: float | None) -> None:
        self.p_yes, self.prompts = p_yes, []

    def stream(self, request):
        import math

        from loom.backends.base import Chunk
        from loom.model.decode import TokenLogprob

        self.prompts.append(request.messages)
        assert request.sampling.max_tokens == 1 and request.sampling.logprobs
        word = "Yes" if (self.p_yes or 0) >= 0.5 else "No"
        if self.p_yes is None:  # an engine that returns no logprobs: its word alone counts
            yield Chunk(word)
        else:
            top = [("Yes", math.log(self.p_yes), [89]), ("No", math.log(1 - self.p_yes), [78]), (" yes", math.log(1e-4), [32])]
            yield Chunk(word, logprobs=[TokenLogprob(word, top[0 if word == "Yes" else 1][1], [ord(word[0])], top)])
        yield Chunk("", "stop", 40, 1)


@pytest.mark.parametrize("p_yes, answered", [(0.02, False), (0.98, True), (None, False)])
def test_a_reader_decides_questions_on_the_kbs_subject_that_similarity_cannot(lumio, p_yes, answered):
    """"Can the speaker be a PC microphone?" is on the shop's subject, close to the speaker manual: the
    reader's verdict on the chosen passage decides it, and outweighs the word signals (a far off-topic
    question it finds no answer to is handed off); FAQ matches are answered only if it finds the answer
    there."""
    from loom.apps.support.answer import SupportTurn
    from loom.apps.support.reader import Reader
    from loom.apps.support.store import KnowledgeBase

    kb, judge = KnowledgeBase("lumio"), Judge(p_yes)
    reader = Reader(judge)
    turn = SupportTurn(kb, "音箱能当电脑的麦克风用吗？", reader=reader)
    text = "".join(turn)
    # two wordings, averaged; a passage it does not clearly vouch for makes it read the next two candidates too
    per_question = 2 if answered else 6
    assert len(judge.prompts) == per_question and turn.handoff is not answered, (turn.verdict, text)
    prompts = [m[-1]["content"] for m in judge.prompts]
    assert all("音箱能当电脑的麦克风用吗？" in prompt for prompt in prompts)
    assert turn.best.text in prompts[0]  # equal odds everywhere: the encoder's first stays the passage answered from
    assert bool(turn.citations) is answered
    seen = turn.reader_verdict()
    assert seen["model"] == "judge" and abs(seen["p_answers"] - (p_yes if p_yes is not None else 0.1)) < 1e-3
    if not answered:
        assert "the reader found no answer" in turn.verdict.reason
    SupportTurn(kb, "音箱能当电脑的麦克风用吗？", reader=reader)  # the same passages and question: not read again
    assert len(judge.prompts) == per_question
    far = SupportTurn(kb, "Can you recommend a good movie?", reader=reader)
    assert "".join(far) and far.reader_verdict() is not None and far.handoff is not answered
    asked = len(judge.prompts)
    # a FAQ match is read too: "怎么申请信用卡？" comes close to the payment-methods FAQ, which does not say
    faq = SupportTurn(kb, "退款多久到账？", reader=reader)
    text = "".join(faq)
    assert len(judge.prompts) == asked + per_question and faq.reader_verdict() is not None
    # vetoed, the FAQ pair is no longer taken as the customer's own question; the evidence rule still weighs it
    assert ("3-5个工作日" in text and faq.mode == "faq") if answered else faq.mode != "faq"


def test_support_ask_reads_with_a_named_model_and_refuses_a_path_as_reader(lumio):
    """`--reader smollm2`: a real model through llama.cpp gives its odds; `auto` with no Chinese-capable
    default chat model installed asks none; a path is not a model name."""
    read = ask("音箱能当电脑的麦克风用吗？", "--reader", "smollm2")
    assert read["reader"]["model"] == "smollm2" and 0.0 < read["reader"]["p_answers"] < 1.0, read
    assert ask("音箱能当电脑的麦克风用吗？")["reader"] is None
    assert ask("音箱能当电脑的麦克风用吗？", "--reader", "off")["reader"] is None
    bad = loom_cli("support", "ask", "lumio", "hi", "--reader", "../../etc/passwd", check=False)
    assert bad.returncode != 0 and "not a model name" in bad.stderr


def test_auto_reader_is_the_measured_model_only_when_installed(loom_home):
    from loom import home
    from loom.apps.support.reader import auto_name
    from loom.config import SupportConfig

    assert auto_name("auto", None) is None and auto_name("off", "qwen2.5-1.5b") is None
    assert auto_name("smollm2", None) == "smollm2"
    home.settings_path().parent.mkdir(parents=True, exist_ok=True)
    home.settings_path().write_text(json.dumps({"chat_model": "qwen2.5-1.5b"}), encoding="utf-8")
    assert auto_name("auto", "smollm2") is None  # the default names it, but it is not pulled here
    with pytest.raises(ValueError, match="not a model name"):
        SupportConfig(reader="/etc/passwd")


def test_the_reader_answers_from_the_candidate_it_vouches_for(lumio):
    """When the encoder's first passage is not clearly an answer, the reader reads the next candidates
    and the answer comes from the one it rates highest (on one-line notices the encoder's first is
    often the neighbouring line)."""
    from loom.apps.support.answer import SupportTurn
    from loom.apps.support.reader import Reader
    from loom.apps.support.store import KnowledgeBase

    kb = KnowledgeBase("lumio")
    plain = SupportTurn(kb, "音箱能当电脑的麦克风用吗？")
    runner_up = plain._ranked[1][0]

    class Picky(Judge):
        def stream(self, request):
            self.p_yes = 0.95 if runner_up.text in request.messages[-1]["content"] else 0.05
            yield from super().stream(request)

    judge = Picky(0.05)
    turn = SupportTurn(kb, "音箱能当电脑的麦克风用吗？", reader=Reader(judge))
    "".join(turn)
    assert len(judge.prompts) == 6 and turn.best.chunk_id == runner_up.chunk_id != plain.best.chunk_id
    assert not turn.handoff and turn.citations[0]["chunk_id"] == runner_up.chunk_id

    class Unsure(Judge):  # rates the runner-up a little higher (log-odds +0.2 against -0.2): noise, not a reason
        def stream(self, request):
            self.p_yes = 0.55 if runner_up.text in request.messages[-1]["content"] else 0.45
            yield from super().stream(request)

    unsure = Unsure(0.45)
    kept = SupportTurn(kb, "音箱能当电脑的麦克风用吗？", reader=Reader(unsure))
    assert len(unsure.prompts) == 6 and kept.best.chunk_id == plain.best.chunk_id
    assert abs(kept.reader_verdict()["p_answers"] - 0.45) < 1e-3  # the verdict is on the passage answered from


def test_a_failing_reader_leaves_the_answer_to_the_other_signals(lumio):
    """A reader whose engine is busy or died (Overloaded, a crashed worker) must not fail the customer's turn."""
    from loom.apps.support.answer import SupportTurn
    from loom.apps.support.reader import Reader
    from loom.apps.support.store import KnowledgeBase
    from loom.backends.base import Overloaded

    class Busy:
        name, calls = "busy", 0

        def stream(self, request):
            Busy.calls += 1
            raise Overloaded("the queue is full", "retry later")

    kb = KnowledgeBase("lumio")
    turn = SupportTurn(kb, "音箱能当电脑的麦克风用吗？", reader=Reader(Busy()))  # a question the reader is asked about
    assert "".join(turn) and Busy.calls == 1 and turn.reader_verdict() is None and turn.best is not None
    answered = SupportTurn(kb, "音箱连不上网怎么办？", reader=Reader(Busy()))
    assert "2.4GHz" in "".join(answered) and not answered.handoff
