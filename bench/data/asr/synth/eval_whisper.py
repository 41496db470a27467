"""Transcribe every clip with faster-whisper (language auto-detected) and score it against transcripts.jsonl.

    .venv/bin/python bench/data/asr/synth/eval_whisper.py MODEL_DIR [OUT_JSON]

zh: CER over Han characters/letters/digits after OpenCC t2s on the hypothesis, punctuation and spaces removed.
en: WER after lowercasing and removing punctuation.
mix: token error rate, a token being one Han character or one English word.
"raw" compares the text as is; "num" also rewrites Arabic numerals in the hypothesis as words (Whisper writes
"3点", "$40", "5 o'clock"; the references spell numbers out) and maps 两 to 二 on both sides.
RTF = transcription wall time / audio duration (model load excluded).
"""
import json
import re
import sys
import time
import unicodedata
from pathlib import Path

import av
from faster_whisper import WhisperModel
from opencc import OpenCC

ASR = Path(__file__).resolve().parent.parent
HAN = re.compile(r"[\u4e00-\u9fff]")

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
       "sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORD = {"1st": "first", "2nd": "second", "3rd": "third", "4th": "fourth", "5th": "fifth", "6th": "sixth",
       "7th": "seventh", "8th": "eighth", "9th": "ninth", "10th": "tenth"}


def en_num(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + en_num(n % 100))
    return en_num(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + en_num(n % 1000))


def en_numbers(text: str) -> str:
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ORD.get(m.group(0), m.group(0)), text)
    text = re.sub(r"\$(\d+)", lambda m: en_num(int(m.group(1))) + " dollars", text)
    text = re.sub(r"\b(\d{1,2}):00\b", lambda m: en_num(int(m.group(1))) + " o'clock", text)
    return re.sub(r"\d+", lambda m: en_num(int(m.group(0))), text)


ZH_DIG = "零一二三四五六七八九"


def zh_num(n: int) -> str:
    if n == 0:
        return "零"
    if n >= 10000:
        hi, lo = divmod(n, 10000)
        return zh_num(hi) + "万" + ("" if lo == 0 else ("零" if lo < 1000 else "") + zh_num(lo))
    out, zero = "", False
    for unit, val in (("千", 1000), ("百", 100), ("十", 10), ("", 1)):
        d, n = divmod(n, val)
        if d:
            if zero:
                out += "零"
            out += ZH_DIG[d] + unit
            zero = False
        elif out:
            zero = True
    return out[1:] if out.startswith("一十") else out


def zh_numbers(text: str) -> str:
    return re.sub(r"\d+", lambda m: zh_num(int(m.group(0))), text)


def strip_punct(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "S")))


def tokens(text: str, lang: str) -> list[str]:
    text = strip_punct(text.lower())
    if lang == "zh":
        return [ch for ch in text if not ch.isspace()]
    if lang == "en":
        return text.split()
    out = []  # mix: Han characters one by one, everything else by whitespace
    for piece in text.split():
        out.extend(re.findall(r"[\u4e00-\u9fff]|[^\u4e00-\u9fff]+", piece))
    return out


def edits(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def duration(path: Path) -> float:
    with av.open(str(path)) as c:
        return c.duration / 1e6


def main() -> None:
    model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=2)
    t2s = OpenCC("t2s")
    rows = [json.loads(x) for x in (ASR / "transcripts.jsonl").read_text(encoding="utf-8").splitlines()]
    results = []
    for row in rows:
        path = ASR / "clips" / row["file"]
        t0 = time.perf_counter()
        segs, info = model.transcribe(str(path))
        hyp = "".join(s.text for s in segs)
        wall = time.perf_counter() - t0
        hyp = t2s.convert(hyp)
        ref_raw = tokens(row["text"], row["lang"])
        res = {"file": row["file"], "lang": row["lang"], "detected": info.language,
               "seconds": round(duration(path), 2), "wall": round(wall, 3), "ref": row["text"], "hyp": hyp,
               "n": len(ref_raw), "err_raw": edits(ref_raw, tokens(hyp, row["lang"]))}
        norm = zh_numbers(en_numbers(hyp)) if row["lang"] == "mix" else (
            zh_numbers(hyp) if row["lang"] == "zh" else en_numbers(hyp))
        res["err_num"] = edits(tokens(row["text"].replace("两", "二"), row["lang"]),
                               tokens(norm.replace("两", "二"), row["lang"]))
        results.append(res)
        print(f"{row['file']:12} {info.language} raw={res['err_raw']}/{res['n']} num={res['err_num']}/{res['n']} "
              f"| {hyp}", flush=True)
    summary = {}
    for lang in ("zh", "en", "mix"):
        rs = [r for r in results if r["lang"] == lang]
        n = sum(r["n"] for r in rs)
        summary[lang] = {"clips": len(rs), "ref_tokens": n,
                         "error_rate_raw": round(sum(r["err_raw"] for r in rs) / n, 4),
                         "error_rate_num": round(sum(r["err_num"] for r in rs) / n, 4),
                         "audio_s": round(sum(r["seconds"] for r in rs), 1),
                         "rtf": round(sum(r["wall"] for r in rs) / sum(r["seconds"] for r in rs), 3),
                         "lang_id_ok": sum(r["detected"] == lang for r in rs) if lang != "mix" else None}
    print(json.dumps(summary, indent=1))
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_text(json.dumps({"summary": summary, "clips": results}, ensure_ascii=False,
                                                indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
