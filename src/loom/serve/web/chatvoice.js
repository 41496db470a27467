// The chat's voice input: 🎤 records from the microphone (press to start, press again to stop) or 🎵
// picks a recording; either is sent to /v1/audio/transcriptions (whisper-1, the server's default
// transcription model) and the text lands in the message box to be read and sent. Replies get a 🔊
// button when the server speaks (/v1/audio/speech answers; it is an opt-in extra).
// Uses app.js's helpers ($, run, t, headers) and kb.js's upload.
"use strict";

let recorder = null; // the MediaRecorder while recording
let speaks = null; // null: not asked yet; true/false: whether /v1/audio/speech is installed

async function transcribeInto(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  form.append("model", "whisper-1");
  const h = headers();
  delete h["Content-Type"]; // the browser sets the multipart boundary
  $("chat-voice-status").textContent = t("transcribing");
  try {
    const res = await fetch("/v1/audio/transcriptions", { method: "POST", headers: h, body: form });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data.error && data.error.message) || `${res.status} ${res.statusText}`);
    const box = $("chat-input");
    box.value = (box.value.trim() ? box.value.trim() + " " : "") + data.text;
    box.dispatchEvent(new Event("input"));
    box.focus();
  } finally {
    $("chat-voice-status").textContent = "";
  }
}

// Press to start, press again to stop: `done(blob, fileName)` gets the recording. One recording at a time
// (the chat's 🎤 and the knowledge-base page's 🎤 share the microphone).
async function toggleRecording(button, done) {
  if (recorder) { recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) throw new Error(t("no_microphone"));
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const pieces = [];
  const label = button.textContent;
  recorder = new MediaRecorder(stream);
  recorder.addEventListener("dataavailable", (e) => { if (e.data.size) pieces.push(e.data); });
  recorder.addEventListener("stop", () => run(async () => {
    stream.getTracks().forEach((track) => track.stop());
    const type = recorder.mimeType || "audio/webm";
    recorder = null;
    button.classList.remove("recording"); button.textContent = label; button.title = t("record");
    await done(new Blob(pieces, { type }), type.includes("ogg") ? "recording.ogg" : "recording.webm");
  }));
  recorder.start();
  button.classList.add("recording"); button.textContent = "⏹"; button.title = t("stop_recording");
}

async function speakable() { // asked once: does this server have speech output?
  if (speaks === null) {
    const res = await fetch("/v1/audio/speech", { method: "POST", headers: headers(), body: JSON.stringify({ model: "tts-1", input: "." }) });
    speaks = res.ok;
  }
  return speaks;
}

async function speakButton(textOf) { // a 🔊 button that plays textOf(), or null when the server cannot speak
  if (!(await speakable().catch(() => false))) return null;
  const b = document.createElement("button");
  b.type = "button"; b.className = "speak"; b.textContent = "🔊"; b.title = t("read_aloud");
  b.addEventListener("click", () => run(async () => {
    const res = await fetch("/v1/audio/speech", { method: "POST", headers: headers(), body: JSON.stringify({ model: "tts-1", input: textOf(), response_format: "mp3" }) });
    if (!res.ok) { const data = await res.json().catch(() => ({})); throw new Error((data.error && data.error.message) || res.statusText); }
    new Audio(URL.createObjectURL(await res.blob())).play();
  }));
  return b;
}

$("chat-mic").addEventListener("click", () => run(() => toggleRecording($("chat-mic"), transcribeInto)));
// The knowledge-base page: a spoken note goes in as a recording (transcribed on the server, its chunks
// keep their time ranges), named by the time it was made.
$("kb-mic").addEventListener("click", () => run(() => toggleRecording($("kb-mic"), (blob, name) => {
  const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  return upload([new File([blob], `recording-${stamp}.${name.split(".").pop()}`, { type: blob.type })]);
})));
$("chat-audio").addEventListener("click", () => $("chat-audio-file").click());
$("chat-audio-file").addEventListener("change", () => run(async () => {
  const file = $("chat-audio-file").files[0];
  $("chat-audio-file").value = "";
  if (file) await transcribeInto(file, file.name);
}));
