// The Knowledge bases tab: create one, upload documents, images and scans (multipart), list their
// chunks, search, ask the support assistant (model "support:NAME") and follow a citation to its
// passage, and, for a passage from a scan, to the highlighted place on the page itself.
// Uses app.js's helpers ($, api, run, t, headers, showError, loadModels, TEXT_TYPES, MAX_UPLOAD).
"use strict";

$("kb-create").addEventListener("click", () => run(async () => {
  const name = $("kb-new").value.trim();
  if (!name) { showError(t("empty")); return; }
  await api("/v1/kb", { name });
  await loadModels();
  $("kb-name").value = name;
}));
const IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"]; // read by OCR on the server
const AUDIO_TYPES = [".mp3", ".m4a", ".wav", ".flac", ".ogg", ".opus", ".webm", ".mp4"]; // transcribed on the server
const KB_TYPES = [...TEXT_TYPES, ".pdf", ".docx", ...IMAGE_TYPES, ...AUDIO_TYPES];
const MAX_KB_UPLOAD = 64 * 1024 * 1024 - 16 * 1024; // bytes: the server's upload limit (max_upload_bytes) less framing
async function uploadFile(kb, file) { // multipart: the server reads the bytes (PDF, .docx and images included)
  const dot = file.name.lastIndexOf(".");
  if (dot < 0 || !KB_TYPES.includes(file.name.slice(dot).toLowerCase())) throw new Error(`${file.name}: ${t("bad_type")}`);
  if (file.size > MAX_KB_UPLOAD) throw new Error(`${file.name}: ${t("too_big_kb")}`);
  const form = new FormData();
  form.append("files", file, file.name);
  const h = headers();
  delete h["Content-Type"]; // the browser sets multipart/form-data with its boundary
  const res = await fetch(`/v1/kb/${encodeURIComponent(kb)}/files`, { method: "POST", headers: h, body: form });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || res.status + " " + res.statusText);
  return data;
}
async function upload(files) {
  const name = $("kb-name").value;
  const bar = $("kb-progress");
  bar.hidden = false; bar.max = files.length; bar.value = 0;
  let chunks = 0;
  const problems = [];
  for (const file of files) {
    $("kb-status").textContent = `${t("kb_reading")} ${file.name}…`; // a scan takes seconds a page (OCR)
    try {
      const report = await uploadFile(name, file);
      chunks += report.chunks;
      report.failed.forEach((f) => problems.push(`${f.source}: ${f.error}`));
    } catch (e) { problems.push(e.message); }
    bar.value += 1;
  }
  $("kb-status").textContent = `${files.length} ${t("uploaded")}, ${chunks} ${t("chunks")}` + (problems.length ? `; ${t("failed")}: ${problems.join("; ")}` : "");
  if (problems.length) showError(problems.join("; "));
  await loadDocs();
}
async function loadDocs() {
  const name = $("kb-name").value;
  if (!name) return;
  const info = await api(`/v1/kb/${encodeURIComponent(name)}`);
  const table = $("kb-docs");
  table.innerHTML = `<tr><th>${t("file")}</th><th>${t("chunks")}</th><th></th></tr>`;
  info.files.forEach((f) => {
    const row = table.insertRow();
    row.insertCell().textContent = f.source;
    row.insertCell().textContent = f.chunks;
    const b = document.createElement("button");
    b.textContent = t("show_chunks"); b.type = "button";
    b.addEventListener("click", () => run(async () => {
      const list = $("kb-chunks");
      list.innerHTML = "";
      (await api(`/v1/kb/${encodeURIComponent(name)}/chunks?source=${encodeURIComponent(f.source)}`)).data.forEach((c) => {
        const li = document.createElement("li");
        li.textContent = (c.title ? c.title + ": " : "") + c.text;
        list.appendChild(li);
      });
    }));
    row.insertCell().appendChild(b);
  });
}
$("kb-name").addEventListener("change", () => run(loadDocs));
$("kb-files").addEventListener("change", () => run(() => upload([...$("kb-files").files])));
const drop = $("kb-drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); run(() => upload([...e.dataTransfer.files])); });
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("kb-files").click(); });

$("kb-search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(async () => {
    const query = $("kb-query").value.trim();
    if (!query) { showError(t("empty")); return; }
    const hits = (await api(`/v1/kb/${encodeURIComponent($("kb-name").value)}/search`, { query, k: 5 })).data;
    const list = $("kb-hits");
    list.innerHTML = hits.length ? "" : `<li>${t("no_hits")}</li>`;
    hits.forEach((h) => {
      const li = document.createElement("li");
      const scores = ["bm25", "dense", "faq"].filter((s) => s in h.scores).map((s) => `${s} ${h.scores[s].toFixed(3)} (#${h.scores[s + "_rank"]})`);
      li.textContent = `${h.source}${h.title ? " — " + h.title : ""} [${scores.join(", ")}]: ${h.text.slice(0, 240)}`;
      const where = placeOf($("kb-name").value, h);
      if (where) li.append(" ", where);
      list.appendChild(li);
    });
  });
});
let kbHistory = [];
$("kb-new-conversation").addEventListener("click", () => { kbHistory = []; $("kb-answer").textContent = ""; $("kb-answer-meta").textContent = ""; });
$("kb-name").addEventListener("change", () => { kbHistory = []; });
$("kb-ask-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(async () => {
    const question = $("kb-question").value.trim();
    if (!question) { showError(t("empty")); return; }
    // Multi-turn: earlier turns go along, so follow-ups ("and for that?") are understood.
    kbHistory.push({ role: "user", content: question });
    const kb = $("kb-name").value;
    const reply = await api("/v1/chat/completions", { model: "support:" + kb, messages: kbHistory });
    const message = reply.choices[0].message;
    kbHistory.push({ role: "assistant", content: message.content });
    // How the answer was made: a hand-off is said plainly, so nobody mistakes it for an answer.
    const how = reply.choices[0].loom || {};
    // When a chat model read the passage first (the support reader), say which and how sure it was.
    const read = how.reader ? ` · ${t("checked_by")} ${how.reader.model} (${Number(how.reader.p_answers).toFixed(2)})` : "";
    $("kb-answer-meta").textContent = how.handoff ? t("answer_handoff") + read
      : how.mode ? `${t("answer_" + how.mode)} · ${t("confidence")} ${Number(how.confidence).toFixed(2)}${read}` : "";
    const box = $("kb-answer");
    box.textContent = "";
    // Citation markers [n] become buttons that open the cited passage.
    message.content.split(/(\[\d+\])/).forEach((part) => {
      const m = part.match(/^\[(\d+)\]$/);
      const cite = m && (message.citations || []).find((c) => c.n === Number(m[1]));
      if (!cite) { box.appendChild(document.createTextNode(part)); return; }
      const b = document.createElement("button");
      b.className = "cite"; b.textContent = part; b.type = "button";
      b.title = cite.source + (cite.page ? ", " + t("page_n").replace("{n}", cite.page) : "") + (cite.time ? " " + cite.time : "");
      b.addEventListener("click", () => {
        $("kb-cited-text").textContent = `${cite.source}\n\n${cite.text}`;
        $("kb-cited-where").replaceChildren(placeOf(kb, cite) || "");
        $("kb-cited").open = true;
      });
      box.appendChild(b);
    });
  });
});
$("kb-handoffs-load").addEventListener("click", () => run(async () => {
  const rows = (await api(`/v1/kb/${encodeURIComponent($("kb-name").value)}/handoffs`)).data;
  $("kb-handoffs").innerHTML = "";
  rows.forEach((r) => { const li = document.createElement("li"); li.textContent = `${new Date(r.ts * 1000).toLocaleString()} — ${r.question}`; $("kb-handoffs").appendChild(li); });
}));


// ---- a passage from a scan, shown where it is on its page ----------------------------------
// Hits and citations from images and PDFs carry `page` and `regions` ([x0, y0, x1, y1] as fractions
// of the page, origin top-left); `scanned` when the page was read by OCR and so has a preview. The page's JPEG preview is fetched with the API key (an
// <img src> could not send it) and shown from an object URL; each region is a box placed in % of the
// image, so it fits the picture at any size. Escape or Close shuts the dialog.
function placeOf(kb, hit) { // "page N" and a Show-on-page button, a recording's time range, or null for text documents
  if (hit.time) { const when = document.createElement("span"); when.className = "where"; when.textContent = hit.time; return when; }
  if (!hit.page) return null;
  const span = document.createElement("span");
  span.className = "where";
  span.textContent = t("page_n").replace("{n}", hit.page);
  if (hit.scanned && hit.regions && hit.regions.length) { // typed PDF pages have no picture to show
    const b = document.createElement("button");
    b.type = "button"; b.className = "show-page"; b.textContent = t("show_on_page");
    b.addEventListener("click", () => run(() => showOnPage(kb, hit)));
    span.append(" ", b);
  }
  return span;
}
const pct = (v) => (100 * Math.min(1, Math.max(0, v))).toFixed(2) + "%";
let pageURL = null;
async function showOnPage(kb, hit) {
  const res = await fetch(`/v1/kb/${encodeURIComponent(kb)}/pages?source=${encodeURIComponent(hit.source)}&page=${hit.page}`,
                          { headers: headers() });
  if (res.status === 404) throw new Error(t("no_page_image"));
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    throw new Error((data.error && data.error.message) || res.status + " " + res.statusText);
  }
  if (pageURL) URL.revokeObjectURL(pageURL);
  pageURL = URL.createObjectURL(await res.blob());
  const box = $("page-view-box");
  box.querySelectorAll(".hl").forEach((d) => d.remove());
  hit.regions.forEach(([x0, y0, x1, y1]) => {
    const mark = document.createElement("div");
    mark.className = "hl";
    Object.assign(mark.style, { left: pct(x0), top: pct(y0), width: pct(x1 - x0), height: pct(y1 - y0) });
    box.appendChild(mark);
  });
  $("page-view-img").alt = $("page-view-title").textContent = `${hit.source} · ${t("page_n").replace("{n}", hit.page)}`;
  $("page-view-img").src = pageURL;
  if (!$("page-view").open) $("page-view").showModal();
}
$("page-view-close").addEventListener("click", () => $("page-view").close());
$("page-view").addEventListener("click", (e) => { if (e.target === $("page-view")) $("page-view").close(); }); // the backdrop
$("page-view").addEventListener("close", () => {
  $("page-view-img").removeAttribute("src");
  if (pageURL) URL.revokeObjectURL(pageURL);
  pageURL = null;
});
