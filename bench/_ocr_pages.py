"""The OCR benchmark's test set (bench/ocr.py), rendered with Pillow from text written for it: pages
in Chinese and English (clean, rotated by 4, 90 and 180 degrees, blurred + noisy JPEG, small text, a
dense A4 page, two columns under a full-width title, a ruled table) and a shop FAQ as Markdown and as
an image-only PDF.

Each case keeps the exact text drawn, in reading order (columns one after the other, a table row by
row, cells left to right), as its ground truth."""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features

_SYSTEM_TTC = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
_TTC_SC = 2  # the collection's faces: JP, KR, SC, TC, HK, ...
_RAQM = features.check("raqm")


def cjk_font() -> tuple[str, int]:
    """(path, face index) of a CJK font: the cvttf-notosanscjk-regular package, else Debian's Noto CJK."""
    spec = importlib.util.find_spec("cvttf_NotoSansCJK_Regular")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for f in sorted(Path(folder).glob("*.[ot]tf")):
            return str(f), 0
    if _SYSTEM_TTC.is_file():
        return str(_SYSTEM_TTC), _TTC_SC
    raise SystemExit("no CJK font found: .venv/bin/pip install cvttf-notosanscjk-regular==1.0 "
                     "(or apt-get install fonts-noto-cjk)")


ZH = [
    "关于春节期间营业安排的通知：本店将于2月8日至2月14日暂停门店营业，线上订单照常接收，但发货时间顺延至2月15日。给您带来的不便，敬请谅解。",
    "节后首周订单较多，客服热线的等待时间可能超过十分钟。如需查询物流进度，建议优先使用订单页面中的“查看物流”按钮，或在工作日9:00至18:00之间来电。",
    "产品说明：这款便携式电热水壶（型号KT-0812）容量为0.8升，额定功率1200瓦，壶身采用双层防烫设计，底座支持360度旋转放置。首次使用前，请加满清水煮沸两次后倒掉。",
    "注意事项：请勿在无水状态下通电；清洗时不要将底座浸入水中；儿童使用须有成人在旁看护。若发现电源线破损，应立即停止使用，并联系售后服务中心更换。",
    "第一条 甲方委托乙方承担办公楼三层会议室的装修工程，工程范围包括墙面处理、吊顶安装、照明线路改造以及地面铺设，具体要求以附件一所列清单为准。",
    "第二条 工程总工期为四十五个日历日，自双方签字之日起计算。因甲方原因导致停工的，工期相应顺延；因乙方原因逾期完工的，每逾期一日按合同总价的千分之三支付违约金。",
    "第三条 合同总价为人民币186,000元整，分三期支付：签约后五个工作日内支付30%，主体完工验收后支付50%，质保期满且无质量问题后支付剩余的20%。",
    "会员积分规则：每消费一元累计一分，积分可在下次购物时按一百分抵扣一元使用。积分有效期为两年，过期自动清零；退货订单对应的积分将同时扣除。",
    "图书馆温馨提示：自下月起，自助借还机将升级为刷脸认证，读者须携带身份证到服务台完成一次信息核验。逾期未还的图书每册每天收取滞纳金两角，最高不超过书价。",
    "小区停车管理办法：业主车辆须在物业处登记车牌号码后方可免费进出；访客车辆前两小时免费，超过部分每小时收费5元。消防通道内严禁停放任何车辆。",
    "实验室安全守则：进入实验区域必须穿戴防护眼镜和实验服，长发应束起。使用挥发性试剂时请在通风橱内操作，废液按类别倒入指定回收桶，不得直接排入下水道。",
    "本次软件更新修复了夜间模式下部分图标显示不清的问题，优化了大文件上传的稳定性，并新增按日期筛选账单的功能。更新包大小约为56MB，建议在无线网络环境下下载。",
]

EN = [
    "Notice to all tenants: the water supply to Building C will be shut off on Tuesday from 9:00 to 13:00 while the main valve is replaced. Please store enough water for the morning and keep taps closed to avoid flooding when the supply returns.",
    "The parking garage will be repainted over the weekend of 14 and 15 June. Vehicles left on levels two and three after Friday at 8 pm may be moved to the street at the owner's expense.",
    "Product sheet: the TrailLite 40 backpack weighs 1.2 kg and holds 40 litres. The frame is made of aluminium, the fabric is water resistant, and the hip belt can be adjusted for torso lengths between 42 and 52 cm.",
    "Care instructions: wipe the fabric with a damp cloth and mild soap, never use bleach, and let the pack dry in the shade before storing it. Do not put it in a washing machine or a tumble dryer.",
    "1. Services. The Contractor shall provide monthly maintenance of the heating and ventilation equipment listed in Schedule A, including filter replacement, inspection of belts and motors, and a written report after each visit.",
    "2. Payment. The Client shall pay each invoice within thirty days of receipt. Late payments shall bear interest at one percent per month, and the Contractor may suspend the services after fifteen days' written notice.",
    "3. Termination. Either party may terminate this agreement by giving sixty days' notice in writing. Fees for services performed before the termination date remain payable in full.",
    "Library notice: from next month, books may be renewed online up to three times unless another reader has placed a hold. Overdue items are charged 20 cents per day, and borrowing is blocked once fines exceed $5.",
    "Our spring workshop on household budgeting takes place every Thursday evening in Room 204. Places are limited to twenty participants, so please register at the front desk or by email before the end of March.",
    "Safety data: keep the cleaning concentrate away from children and pets. If it comes into contact with the eyes, rinse with plenty of water for at least fifteen minutes and seek medical advice if irritation persists.",
    "Release notes for version 4.2: the export dialog now remembers the last folder used, printing no longer fails for pages wider than A3, and the search box accepts quoted phrases. Older project files open without conversion.",
    "Warehouse hours change on 1 October. Deliveries are accepted Monday to Friday from 7:30 to 16:00; drivers must book a slot at least one day in advance and show the booking number at the gate.",
]

TITLES = {"zh": "二〇二五年第三季度客户服务简报", "en": "Customer Service Bulletin, Third Quarter 2025"}

TABLES = {
    "zh": [["编号", "品名", "规格", "数量", "单价", "到货日期"],
           ["A-101", "保温杯", "500毫升", "120", "45.00", "3月12日"],
           ["A-102", "帆布背包", "大号", "60", "129.00", "3月15日"],
           ["A-205", "陶瓷餐盘", "8英寸", "300", "18.50", "3月18日"],
           ["B-310", "充电台灯", "白色", "85", "79.90", "3月20日"],
           ["B-311", "无线鼠标", "黑色", "150", "59.00", "3月22日"],
           ["C-402", "竹制砧板", "中号", "90", "36.00", "3月25日"],
           ["C-417", "防滑地垫", "60×90", "200", "42.00", "3月28日"],
           ["D-530", "收纳箱", "30升", "75", "55.00", "4月2日"]],
    "en": [["Code", "Item", "Size", "Qty", "Unit price", "Due"],
           ["A-101", "Steel bottle", "500 ml", "120", "4.50", "12 Mar"],
           ["A-102", "Canvas bag", "Large", "60", "12.90", "15 Mar"],
           ["A-205", "Dinner plate", "8 inch", "300", "1.85", "18 Mar"],
           ["B-310", "Desk lamp", "White", "85", "7.99", "20 Mar"],
           ["B-311", "Wireless mouse", "Black", "150", "5.90", "22 Mar"],
           ["C-402", "Cutting board", "Medium", "90", "3.60", "25 Mar"],
           ["C-417", "Floor mat", "60x90", "200", "4.20", "28 Mar"],
           ["D-530", "Storage box", "30 l", "75", "5.50", "2 Apr"]],
}

# A shop's FAQ: (question, answer, key). The key is a word of the answer found in no other entry: a
# retrieved chunk that contains it is the right one (for the scanned copy too, as it has no spaces).
FAQ = [
    ("收到商品后多久内可以申请退货？", "自签收之日起七天内，商品未经使用且包装完好，可在订单页面点击“申请退货”。定制类商品和已拆封的贴身衣物不支持无理由退货。", "贴身衣物"),
    ("退款多久能到账？", "仓库收到退回的商品并检验通过后，退款会在一至三个工作日内原路退回。使用信用卡支付的，到账时间以发卡银行为准。", "发卡银行"),
    ("退货运费由谁承担？", "因质量问题退货的，运费由本店承担，请先垫付并上传快递单据，我们将随退款一并返还。非质量问题退货的运费由顾客自理。", "垫付"),
    ("下单后一般几天发货？", "现货商品在付款后四十八小时内发出；预售商品以商品页面标注的发货日期为准。节假日期间发货可能顺延。", "预售商品"),
    ("可以指定快递公司吗？", "默认使用顺丰或中通发货，如需指定其中一家，请在下单备注中写明。部分乡镇网点有限，可能无法满足指定要求。", "乡镇网点"),
    ("支持配送到哪些地区？", "目前支持中国大陆全境以及香港、澳门地区配送，新疆、西藏等地需加收十元运费。暂不支持海外地址。", "西藏"),
    ("包裹显示已签收但我没有收到怎么办？", "请先检查快递柜、门卫室或家人是否代收。如仍未找到，请在显示签收后两天内联系客服，我们会与快递公司核实。", "门卫室"),
    ("商品的保修期是多长？", "电器类商品整机保修一年，主要部件保修三年，保修期从签收之日起计算。请保留发票或订单截图作为保修凭证。", "主要部件"),
    ("人为损坏可以保修吗？", "跌落、进水、私自拆机造成的损坏不在免费保修范围内，但可以提供付费维修，维修前会先告知报价。", "私自拆机"),
    ("如何修改账户绑定的手机号？", "登录后进入“账户设置”中的安全中心，先验证原手机号，再输入新号码并填写短信验证码即可完成更换。", "安全中心"),
    ("忘记登录密码怎么办？", "在登录页点击“忘记密码”，通过绑定的手机或邮箱接收重置链接。链接三十分钟内有效，过期需重新申请。", "重置链接"),
    ("发票怎么开？", "订单完成后可在订单详情页申请电子发票，支持个人和企业抬头，开具后会发送到您填写的邮箱。", "企业抬头"),
    ("如何注销账户？", "注销前请确认没有未完成的订单和未到账的退款。提交注销申请后有十五天冷静期，期间重新登录即可撤销。", "冷静期"),
    ("How do I return an item?", "Start a return from the Orders page within 30 days of delivery. Print the prepaid label we email you, pack the item in its original box and drop it at any partner post office.", "prepaid"),
    ("Can I exchange an item for a different size?", "Yes. Choose Exchange instead of Return and pick the new size. We ship the replacement as soon as the carrier scans the parcel you sent back.", "carrier"),
    ("When will I get my refund?", "Refunds go to the original payment method within five business days after the returned item passes inspection.", "inspection"),
    ("How much does shipping cost?", "Standard shipping is free on orders over 50 dollars and costs 4.95 below that. Express delivery costs 12 dollars whatever the order size.", "Standard"),
    ("Do you ship internationally?", "We deliver to Canada, the United Kingdom and most of the European Union. Customs duties are collected by the courier on delivery.", "Customs"),
    ("How can I track my order?", "A tracking link is emailed when the parcel leaves our warehouse. It usually becomes active within a day.", "tracking"),
    ("My parcel arrived damaged. What should I do?", "Take photos of the box and the item and send them to us within 48 hours. We send a new one at no charge and you keep the broken one.", "photos"),
    ("What does the warranty cover?", "All electronics carry a two-year warranty against manufacturing defects. It does not cover batteries worn by normal use or cosmetic scratches.", "scratches"),
    ("How do I make a warranty claim?", "Fill in the claim form on the Support page with your order number and a short description of the fault. We reply within two business days with repair instructions.", "fault"),
    ("How do I change my email address?", "Go to Account, then Profile, and enter the new address. We send a confirmation link to it and the change takes effect once you open the link.", "Profile"),
    ("Can I delete my account?", "Yes: under Account, Privacy, choose Delete account. Order history is kept for seven years for tax purposes; all other data is erased within 30 days.", "erased"),
    ("Which payment methods do you accept?", "We accept Visa, Mastercard, PayPal and gift cards. Your card is charged when the order ships, not when it is placed.", "Mastercard"),
]

# Held-out questions: paraphrases (not the headings), each with the key of the entry that answers it.
FAQ_QUESTIONS = [
    ("买的东西不想要了，几天之内还能退？", "贴身衣物"), ("退回去的钱要等多久才能回到我的卡上？", "发卡银行"),
    ("东西有质量问题，寄回去的快递费谁出？", "垫付"), ("付完款以后什么时候能寄出来？", "预售商品"),
    ("我想让你们用顺丰寄，行吗？", "乡镇网点"), ("新疆能送到吗？要不要加钱？", "西藏"),
    ("物流说已经签收了，可我根本没拿到包裹", "门卫室"), ("电器买了多久之内坏了能免费修？", "主要部件"),
    ("东西不小心摔坏了，还能免费修吗？", "私自拆机"), ("换了新手机号，账户上的号码怎么改？", "安全中心"),
    ("密码想不起来了，怎么登录？", "重置链接"), ("公司报销需要发票，怎么申请？", "企业抬头"),
    ("我不想再用这个账号了，怎么删掉？", "冷静期"),
    ("I want to send back something I bought last week, how?", "prepaid"),
    ("The shoes are too small, can I swap them for a bigger pair?", "carrier"),
    ("How long until I see my money after sending something back?", "inspection"),
    ("Is delivery free?", "Standard"), ("Can you send my order to Germany?", "Customs"),
    ("Where is my package right now?", "tracking"), ("The box came crushed and the thing inside is broken", "photos"),
    ("Is a battery that wore out covered by the guarantee?", "scratches"),
    ("My headphones stopped working after a month, how do I get them repaired?", "fault"),
    ("I need to update the e-mail on my profile", "Profile"), ("How do I close my account for good?", "erased"),
    ("Can I pay with a credit card?", "Mastercard"),
]


@dataclass
class Case:
    name: str  # "clean-zh"
    group: str  # clean | rotated | noisy | small | dense | columns | table
    lang: str  # zh | en
    image: Image.Image
    truth: str  # the drawn text in reading order: paragraphs by blank lines, table cells by tabs
    jpeg: int = 0  # save as JPEG at this quality (0: PNG)

    def data(self) -> bytes:
        out = io.BytesIO()
        self.image.save(out, format="JPEG", quality=self.jpeg) if self.jpeg else self.image.save(out, format="PNG")
        return out.getvalue()


_NO_LINE_START = set("，。、；：！？）」』”’》")  # Chinese typesetting keeps these off the start of a line


def _simplified(text: str) -> dict:
    """Simplified Chinese glyph forms (punctuation at the bottom left, not centred as in the Taiwan
    forms the pip font defaults to), where Pillow has libraqm to apply the font's locl feature."""
    return {"language": "zh-Hans"} if _RAQM and any(ord(c) > 0x2E7F for c in text) else {}


class Pen:
    def __init__(self, font: tuple[str, int], size: int) -> None:
        self.font = ImageFont.truetype(font[0], size, index=font[1])
        self.size = size

    def wrap(self, text: str, width: float) -> list[str]:
        """Greedy line breaks: between any two Chinese characters, between words elsewhere."""
        tokens, word = [], ""
        for ch in text:
            if ch == " " or ord(ch) > 0x2E7F:
                if word:
                    tokens.append(word)
                tokens.append(ch)
                word = ""
            else:
                word += ch
        tokens += [word] if word else []
        lines, line = [], ""
        for tok in tokens:
            if line and tok not in _NO_LINE_START and self.font.getlength((line + tok).rstrip()) > width:
                lines.append(line.rstrip())
                line = tok.lstrip()
            else:
                line += tok
        return lines + ([line.rstrip()] if line.strip() else [])

    def lines(self, draw: ImageDraw.ImageDraw, lines: list[str], x: float, y: float, leading: float = 1.5) -> float:
        for line in lines:
            draw.text((x, y), line, font=self.font, fill=(20, 20, 20), **_simplified(line))
            y += self.size * leading
        return y


def _paragraph_page(font, paras: list[str], size: int, width: int, margin: int = 60, height: int | None = None,
                    title: str = "") -> tuple[Image.Image, str]:
    """Paragraphs on white; with `height` fixed, as many paragraphs as fit. Returns (image, truth)."""
    pen, head = Pen(font, size), Pen(font, round(size * 1.4))
    wrapped = [pen.wrap(p, width - 2 * margin) for p in paras]
    needed = margin * 2 + (head.size * 2.2 if title else 0) + sum(len(w) * size * 1.5 + size * 0.6 for w in wrapped)
    image = Image.new("RGB", (width, height or int(needed)), "white")
    draw = ImageDraw.Draw(image)
    y, drawn = margin, [title] if title else []
    if title:
        head.lines(draw, [title], margin, y)
        y += head.size * 2.2
    for para, lines in zip(paras, wrapped):
        if height and y + len(lines) * size * 1.5 > height - margin:
            break
        y = pen.lines(draw, lines, margin, y) + size * 0.6
        drawn.append(para)
    return image, "\n\n".join(drawn)


def _two_columns(font, lang: str, paras: list[str], size: int = 24, width: int = 1654, margin: int = 100,
                 gap: int = 80) -> tuple[Image.Image, str]:
    """A full-width title over two columns; the text flows down the left column, then the right."""
    pen, head = Pen(font, size), Pen(font, round(size * 1.6))
    col = (width - 2 * margin - gap) // 2
    lines = [ln for p in paras for ln in pen.wrap(p, col) + [""]][:-1]  # "" = a paragraph gap
    half = (len(lines) + 1) // 2
    while lines[half - 1] == "":
        half -= 1
    columns = [lines[:half], [ln for ln in lines[half:]]]
    while columns[1] and columns[1][0] == "":
        columns[1].pop(0)
    top = margin + head.size * 2.5
    image = Image.new("RGB", (width, int(top + max(map(len, columns)) * size * 1.5 + margin)), "white")
    draw = ImageDraw.Draw(image)
    draw.text(((width - head.font.getlength(TITLES[lang])) / 2, margin), TITLES[lang], font=head.font, fill=(0, 0, 0),
              **_simplified(TITLES[lang]))
    for i, column in enumerate(columns):
        pen.lines(draw, column, margin + i * (col + gap), top)
    return image, TITLES[lang] + "\n\n" + "\n".join(ln for c in columns for ln in c)


def _table(font, rows: list[list[str]], size: int = 24, pad: int = 16) -> tuple[Image.Image, str]:
    pen = Pen(font, size)
    widths = [max(pen.font.getlength(r[c]) for r in rows) + 2 * pad for c in range(len(rows[0]))]
    row_h, margin = size + 2 * pad, 50
    image = Image.new("RGB", (int(sum(widths) + 2 * margin), row_h * len(rows) + 2 * margin), "white")
    draw = ImageDraw.Draw(image)
    xs = [margin + sum(widths[:c]) for c in range(len(widths) + 1)]
    for r, row in enumerate(rows):
        y = margin + r * row_h
        for c, cell in enumerate(row):
            draw.text((xs[c] + pad, y + pad - size * 0.1), cell, font=pen.font, fill=(0, 0, 0), **_simplified(cell))
    for r in range(len(rows) + 1):
        draw.line([(xs[0], margin + r * row_h), (xs[-1], margin + r * row_h)], fill=(90, 90, 90), width=2)
    for x in xs:
        draw.line([(x, margin), (x, margin + len(rows) * row_h)], fill=(90, 90, 90), width=2)
    return image, "\n".join("\t".join(r) for r in rows)


def _degrade(image: Image.Image, seed: int, blur: float = 1.1, noise: float = 18.0) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32)
    pixels += rng.normal(0, noise, pixels.shape[:2])[:, :, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _rotate(image: Image.Image, degrees: float) -> Image.Image:
    return image.rotate(degrees, resample=Image.BICUBIC, expand=True, fillcolor="white")


def cases(font: tuple[str, int]) -> list[Case]:
    out = []
    for lang, paras in (("zh", ZH), ("en", EN)):
        sign = 1 if lang == "zh" else -1
        image, truth = _paragraph_page(font, paras[0:4], 24, 1200)
        out.append(Case(f"clean-{lang}", "clean", lang, image, truth))
        image, truth = _paragraph_page(font, paras[4:7], 24, 1200)
        for degrees in (4 * sign, 90 * sign, 180):  # anticlockwise; a page on its side; upside down
            out.append(Case(f"rotated{degrees:+d}-{lang}", "rotated", lang, _rotate(image, degrees), truth))
        image, truth = _paragraph_page(font, paras[7:10], 24, 1200)
        out.append(Case(f"noisy-{lang}", "noisy", lang, _degrade(image, seed=len(out)), truth, jpeg=40))
        image, truth = _paragraph_page(font, paras[9:12], 17, 900, margin=40)
        out.append(Case(f"small-17px-{lang}", "small", lang, image, truth))
        image, truth = _paragraph_page(font, paras + paras[::-1], 28, 1654, margin=150, height=2339, title=TITLES[lang])
        out.append(Case(f"dense-a4-{lang}", "dense", lang, image, truth))
        image, truth = _two_columns(font, lang, paras[2:9])
        out.append(Case(f"two-column-{lang}", "columns", lang, image, truth))
        image, truth = _table(font, TABLES[lang])
        out.append(Case(f"table-{lang}", "table", lang, image, truth))
    return out


def faq_documents(font: tuple[str, int], folder: Path, dpi: int = 200) -> tuple[Path, Path]:
    """The FAQ as Markdown (one section per entry) and as an image-only PDF (A4 pages at `dpi`, no
    text layer). Returns (markdown path, PDF path)."""
    title = "网店常见问题 Shop FAQ"
    md = [f"# {title}", ""]
    for q, a, _ in FAQ:
        md += [f"## {q}", "", a, ""]
    text_path = folder / "shop-faq.md"
    text_path.write_text("\n".join(md), encoding="utf-8")

    width, height, margin = round(8.27 * dpi), round(11.69 * dpi), round(0.8 * dpi)
    body, question, head = Pen(font, round(dpi * 0.13)), Pen(font, round(dpi * 0.15)), Pen(font, round(dpi * 0.2))
    pages, y, draw = [], height, None
    for i, (q, a, _) in enumerate(FAQ):
        qs, lines = question.wrap(q, width - 2 * margin), body.wrap(a, width - 2 * margin)
        need = (len(qs) * question.size + len(lines) * body.size) * 1.5 + body.size
        if y + need > height - margin:
            pages.append(Image.new("RGB", (width, height), "white"))
            draw, y = ImageDraw.Draw(pages[-1]), margin
            if i == 0:
                y = head.lines(draw, [title], margin, y) + head.size
        y = question.lines(draw, qs, margin, y)
        y = body.lines(draw, lines, margin, y) + body.size
    pdf_path = folder / "shop-faq-scan.pdf"
    pages[0].save(pdf_path, format="PDF", save_all=True, append_images=pages[1:], resolution=float(dpi))
    return text_path, pdf_path
