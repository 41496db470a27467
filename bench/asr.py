"""Speech to text: Loom's /v1/audio/transcriptions (through the openai client, a real `loom serve`) against
faster-whisper called directly on the same files, in the same run, on bench/data/asr (54 synthetic clips:
24 Mandarin, 24 English, 6 mixed; bench/data/asr/README.md says how they were made).

Both run Whisper base, CTranslate2 int8, 2 CPU threads, beam 5, the language detected. The direct peer is
what a faster-whisper user writes: model.transcribe(file) with its defaults, Traditional output converted
to Simplified with the same OpenCC table (without it its Chinese CER would be meaningless). Clips are
sent one at a time, alternating Loom and the peer, so machine noise hits both alike.

Figures: Chinese CER and English WER (raw, and with numbers normalised: Whisper writes 3点 and
"5 o'clock" where the references spell them out), mixed clips: sentences kept (a part counts as
kept when >= 60% of its characters or words are in the output) and token error rate; real-time factor
(wall time / audio seconds) for each, and on one long recording per language (the clips in a row: a
3-second clip pays for a whole 30-second Whisper window, a meeting does not), and the speed ratio peer_time / loom_time (>= 0.9 is the goal:
Loom's route no slower than 0.9x the library called directly); the server's RSS with the model loaded.

Needs whisper-base in LOOM_HOME (loom models pull whisper-base).

    python bench/asr.py [--model whisper-base] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).parent / "data" / "asr"
GOAL_CER, GOAL_WER, GOAL_RTF, GOAL_SPEED = 0.05, 0.05, 0.3, 0.9
KEPT_SHARE = 0.6


def scorer():
    """The scoring helpers written with the clips (bench/data/asr/synth/eval_whisper.py): tokens,
    edit distance, number normalisation."""
    spec = importlib.util.spec_from_file_location("asr_score", DATA / "synth" / "eval_whisper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kept(score, part: dict, hyp: str) -> bool:
    """Is this sentence of a mixed clip in the output? Share of its units (Han characters, or words) found."""
    units = score.tokens(part["text"], part["lang"])
    got = score.tokens(score.zh_numbers(score.en_numbers(hyp)), "mix")
    normalised = score.tokens(score.zh_numbers(score.en_numbers(part["text"])), part["lang"])
    found = sum(1 for u in normalised if u in got)
    return found >= KEPT_SHARE * max(1, len(units))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="whisper-base")
    ap.add_argument("--json", help="write every clip's outputs and the figures here")
    args = ap.parse_args()

    import openai
    import psutil
    from faster_whisper import WhisperModel
    from opencc import OpenCC

    from loom import atomic, catalog
    from loom.serve.process import ServerProcess

    entry = catalog.get(args.model)
    score, t2s = scorer(), OpenCC("t2s")
    rows = [json.loads(line) for line in (DATA / "transcripts.jsonl").read_text(encoding="utf-8").splitlines()]
    peer = WhisperModel(entry.path, device="cpu", compute_type="int8", cpu_threads=2)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)  # the server's own LOOM_HOME: only this model in its catalog, whisper-1 = it
        atomic.write_json(home / "models.json", {args.model: entry.model_dump(exclude={"builtin"})})
        atomic.write_json(home / "settings.json", {"transcription_model": args.model})
        with ServerProcess(home) as server:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=600)
            warm = (DATA / "clips" / rows[0]["file"]).read_bytes()
            client.audio.transcriptions.create(model="whisper-1", file=("warm.ogg", warm))  # load outside the timings
            list(peer.transcribe(str(DATA / "clips" / rows[0]["file"]))[0])
            results = [one(row, client, peer, t2s, score) for row in rows]
            long = [recording(lang, rows, client, peer, t2s, score) for lang in ("zh", "en")]
            rss = psutil.Process(server.proc.pid).memory_info().rss
    report(results, long, rss, score, args.json)


def recording(lang: str, rows: list[dict], client, peer, t2s, score) -> dict:
    """One long recording: every clip of a language in a row, 0.6 s of silence between them (a
    meeting-length file, where Whisper's 30-second windows are full; a 3-second clip pays for a
    whole window)."""
    import io
    import wave

    import numpy as np

    from loom.media.audio import SAMPLE_RATE, decode_audio

    picked = [r for r in rows if r["lang"] == lang]
    gap = np.zeros(int(0.6 * SAMPLE_RATE), dtype=np.float32)
    samples = np.concatenate([part for r in picked for part in (decode_audio(DATA / "clips" / r["file"]).samples, gap)])
    wav = io.BytesIO()
    with wave.open(wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    started = time.perf_counter()
    ours = client.audio.transcriptions.create(model="whisper-1", file=(f"{lang}_long.wav", wav.getvalue())).text
    loom_s = time.perf_counter() - started
    started = time.perf_counter()
    segments, _ = peer.transcribe(samples, beam_size=5)
    theirs = t2s.convert(" ".join(s.text.strip() for s in segments))
    peer_s = time.perf_counter() - started
    ref = score.tokens(" ".join(r["text"] for r in picked), lang)
    out = {"lang": lang, "seconds": len(samples) / SAMPLE_RATE, "loom_s": loom_s, "peer_s": peer_s, "units": len(ref),
           "loom_err": score.edits(ref, score.tokens(ours, lang)) / len(ref),
           "peer_err": score.edits(ref, score.tokens(theirs, lang)) / len(ref)}
    print(f"{lang} long recording, {out['seconds']:.0f} s: loom {loom_s:.1f} s, peer {peer_s:.1f} s", flush=True)
    return out


def one(row: dict, client, peer, t2s, score) -> dict:
    path = DATA / "clips" / row["file"]
    data = path.read_bytes()
    started = time.perf_counter()
    ours = client.audio.transcriptions.create(model="whisper-1", file=(row["file"], data)).text
    loom_s = time.perf_counter() - started
    started = time.perf_counter()
    segments, _ = peer.transcribe(str(path), beam_size=5)
    theirs = t2s.convert("".join(s.text for s in segments)).strip()
    peer_s = time.perf_counter() - started
    seconds = score.duration(path)
    out = {"file": row["file"], "lang": row["lang"], "seconds": seconds, "ref": row["text"], "loom": ours, "peer": theirs,
           "loom_s": loom_s, "peer_s": peer_s}
    for who, hyp in (("loom", ours), ("peer", theirs)):
        ref = score.tokens(row["text"], row["lang"])
        norm = {"zh": score.zh_numbers, "en": score.en_numbers}.get(row["lang"], lambda t: score.zh_numbers(score.en_numbers(t)))(hyp)
        out[f"{who}_err"] = score.edits(ref, score.tokens(hyp, row["lang"]))
        out[f"{who}_err_num"] = score.edits(score.tokens(row["text"].replace("两", "二"), row["lang"]),
                                            score.tokens(norm.replace("两", "二"), row["lang"]))
        out["n"] = len(ref)
        if row["lang"] == "mix":
            out[f"{who}_kept"] = sum(kept(score, part, hyp) for part in row["parts"])
    print(f"{row['file']:11} loom {loom_s:5.2f} s  peer {peer_s:5.2f} s | {ours[:70]}", flush=True)
    return out


def report(results: list[dict], long: list[dict], rss: int, score, json_path: str | None) -> None:
    figures: dict = {}
    print()
    for lang, what in (("zh", "CER"), ("en", "WER"), ("mix", "token error")):
        rs = [r for r in results if r["lang"] == lang]
        n, audio = sum(r["n"] for r in rs), sum(r["seconds"] for r in rs)
        f = {"clips": len(rs), "units": n, "audio_s": round(audio, 1)}
        for who in ("loom", "peer"):
            f[who] = {"error": sum(r[f"{who}_err"] for r in rs) / n, "error_numbers_normalised": sum(r[f"{who}_err_num"] for r in rs) / n,
                      "rtf": sum(r[f"{who}_s"] for r in rs) / audio}
            if lang == "mix":
                f[who]["sentences_kept"] = f"{sum(r[f'{who}_kept'] for r in rs)}/{2 * len(rs)}"
        figures[lang] = f
        for who in ("loom", "peer"):
            x = f[who]
            extra = f"  sentences kept {x['sentences_kept']}" if lang == "mix" else ""
            print(f"{lang:3} {who:4} {what} {x['error']:.4f} (numbers normalised {x['error_numbers_normalised']:.4f})  "
                  f"RTF {x['rtf']:.3f}{extra}")
    # Speed over the one-language clips: on a mixed one the peer decodes once and drops a sentence, Loom
    # decodes the unsure stretch again to find it (its RTF is printed above), so the two did different work.
    same_work = [r for r in results if r["lang"] != "mix"]
    loom_s, peer_s = sum(r["loom_s"] for r in same_work), sum(r["peer_s"] for r in same_work)
    audio = sum(r["seconds"] for r in same_work)
    figures["speed"] = {"loom_s": loom_s, "peer_s": peer_s, "audio_s": audio, "ratio": peer_s / loom_s}
    figures["server_rss_mb"] = rss / 2**20
    figures["long"] = long
    for r in long:
        print(f"{r['lang']} one {r['seconds']:.0f}-second recording: loom error {r['loom_err']:.4f} RTF {r['loom_s'] / r['seconds']:.3f}, "
              f"peer error {r['peer_err']:.4f} RTF {r['peer_s'] / r['seconds']:.3f}, speed ratio {r['peer_s'] / r['loom_s']:.3f}x")
    print(f"\n{len(same_work)} one-language clips, {audio:.0f} s of audio: loom {loom_s:.1f} s (RTF {loom_s / audio:.3f}), "
          f"faster-whisper directly {peer_s:.1f} s (RTF {peer_s / audio:.3f}); server RSS {rss / 2**20:.0f} MB")
    long_rtf = max(r["loom_s"] / r["seconds"] for r in long)
    ok = (figures["zh"]["loom"]["error"] <= GOAL_CER and figures["en"]["loom"]["error"] <= GOAL_WER
          and long_rtf <= GOAL_RTF and min(peer_s / loom_s, *(r["peer_s"] / r["loom_s"] for r in long)) >= GOAL_SPEED)
    if json_path:
        Path(json_path).write_text(json.dumps({"figures": figures, "clips": results}, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{'PASS' if ok else 'FAIL'} (CER <= {GOAL_CER}, WER <= {GOAL_WER}, RTF of a long recording <= {GOAL_RTF}, speed >= {GOAL_SPEED}x): "
          f"speed ratio (faster-whisper time / Loom time) {peer_s / loom_s:.3f}x")


if __name__ == "__main__":
    sys.exit(main())
