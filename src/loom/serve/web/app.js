// Loom's web pages: plain JS written here, calling only the public HTTP API (/v1/...).
// This file: the shared helpers, tabs, models, runs, classify, writing and keys; each larger tab has
// its own module, loaded after this one (chat.js, kb.js, train.js, recommend.js, graph.js).
"use strict";
const $ = (id) => document.getElementById(id);
const MAX_UPLOAD = 4 * 1024 * 1024 - 16 * 1024; // bytes: the server's 4 MiB body limit less multipart framing
const TEXT_TYPES = [".txt", ".md", ".markdown", ".html", ".htm", ".csv", ".jsonl"];

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, body, method) {
  const res = await fetch(path, { method: method || (body ? "POST" : "GET"), headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || res.status + " " + res.statusText);
  return data;
}

async function run(task) { // every action: clear the error line, show any failure as text
  showError("");
  try { await task(); } catch (e) { showError(e.message || String(e)); }
}

// Server-sent events from a POST: calls onEvent(parsed JSON) for each `data:` line until [DONE].
async function streamSSE(path, body, onEvent, signal) {
  const res = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    throw new Error((data.error && data.error.message) || res.status + " " + res.statusText);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 2);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      const event = JSON.parse(data);
      if (event.error) throw new Error(event.error.message);
      onEvent(event);
    }
  }
}

// Text to the clipboard: the Clipboard API where the page may use it (https, localhost), else a
// selected hidden textarea (a server reached over plain http on the LAN). A button says how it went.
async function copyText(text, button) {
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(text); ok = true; }
  } catch (e) { ok = false; }
  if (!ok) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.cssText = "position:fixed;top:0;left:0;opacity:0";
    document.body.appendChild(area);
    area.select();
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
  }
  if (button) {
    button.textContent = t(ok ? "copied" : "copy_failed");
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(() => { button.textContent = t(button.dataset.i18n || "copy"); }, 1500);
  }
  return ok;
}

// ---- tabs and language --------------------------------------------------------------------
function selectTab(name) {
  document.body.dataset.view = name; // the chat tab takes the window's height (style.css)
  document.querySelectorAll("[role=tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
  document.querySelectorAll("[role=tabpanel]").forEach((s) => { s.hidden = s.id !== name; });
  location.hash = name;
}
document.querySelectorAll("[role=tab]").forEach((b) => b.addEventListener("click", () => selectTab(b.dataset.tab)));
$("lang").addEventListener("click", () => applyLanguage(LANG === "zh" ? "en" : "zh"));
$("api-key").value = localStorage.getItem("loom-key") || "";
$("api-key").addEventListener("change", () => { localStorage.setItem("loom-key", $("api-key").value); loadModels(); });

// ---- models -------------------------------------------------------------------------------
let MODELS = [];
// A model picker (re)filled: the choice made on the page stays; a first fill takes the model a saved
// conversation asks for (data-want), else the default chat model (`loom models default NAME`, marked
// "default": true by /v1/models), else the first in the list. `offers`: models not pulled yet, shown
// greyed out with the command that installs them.
function fill(select, items, keepFirst, offers = []) {
  const first = keepFirst ? select.options[0] : null;
  const chosen = select.dataset.want || (select.dataset.filled ? select.value : null);
  delete select.dataset.want;
  select.dataset.filled = "1";
  select.innerHTML = "";
  if (first) select.appendChild(first);
  items.forEach((m) => { const o = document.createElement("option"); o.value = o.textContent = m.id; select.appendChild(o); });
  offers.forEach((m) => {
    const o = document.createElement("option");
    o.value = m.id; o.disabled = true;
    o.textContent = `${m.id} (${t("not_pulled")}: ${m.command}, ~${m.size_mb} MB)`;
    select.appendChild(o);
  });
  const preset = items.find((m) => m.default);
  if (chosen !== null && [...select.options].some((o) => o.value === chosen)) select.value = chosen;
  else if (preset) select.value = preset.id;
}
async function loadModels() {
  await run(async () => {
    const listed = await api("/v1/models");
    MODELS = listed.data;
    const generate = MODELS.filter((m) => m.task === "generate");
    const offers = (listed.pullable || []).filter((m) => m.task === "generate");
    fill($("chat-model"), generate, false, offers);
    fill($("cls-model"), MODELS.filter((m) => m.task === "classify"));
    fill($("w-model"), generate.filter((m) => !m.id.startsWith("support:") && !m.id.startsWith("agent:")), true, offers);
    fill($("kb-name"), MODELS.filter((m) => m.id.startsWith("support:")).map((m) => ({ id: m.id.slice(8) })));
    const table = $("models-table");
    table.innerHTML = "<tr><th>id</th><th>task</th><th>backend</th></tr>";
    MODELS.forEach((m) => { const r = table.insertRow(); [m.id, m.task, m.backend].forEach((v) => { r.insertCell().textContent = v; }); });
    await loadRuns();
    await loadEvals();
  });
}

async function loadEvals() {
  const reports = (await api("/v1/evals")).data;
  const table = $("evals-table");
  table.innerHTML = `<tr><th>${t("evals")}</th><th>${t("examples")}</th><th>${t("accuracy")}</th><th>${t("macro_f1")}</th></tr>`;
  reports.forEach((r) => {
    const row = table.insertRow();
    const b = document.createElement("button");
    b.textContent = r.name; b.className = "cite"; b.type = "button";
    b.addEventListener("click", () => run(() => showEval(r.name)));
    row.insertCell().appendChild(b);
    [r.examples, (r.accuracy || 0).toFixed(4), (r.macro_f1 || 0).toFixed(4)].forEach((v) => { row.insertCell().textContent = v; });
  });
}
async function showEval(name) {
  const rep = await api(`/v1/evals/${encodeURIComponent(name)}`);
  const table = $("eval-classes");
  table.innerHTML = `<tr><th>${t("klass")}</th><th>${t("precision")}</th><th>${t("recall")}</th><th>F1</th><th>${t("support")}</th></tr>`;
  Object.entries(rep.per_class || {}).forEach(([label, m]) => {
    const row = table.insertRow();
    [label, m.precision.toFixed(3), m.recall.toFixed(3), m.f1.toFixed(3), m.support].forEach((v) => { row.insertCell().textContent = v; });
  });
  const img = await fetch(`/v1/evals/${encodeURIComponent(name)}/confusion.png`, { headers: headers() });
  $("eval-confusion").hidden = !img.ok;
  if (img.ok) $("eval-confusion").src = URL.createObjectURL(await img.blob());
  $("eval-detail").hidden = false;
}

// ---- training runs: a table, and a loss chart that refreshes while a run is going ----------
let runTimer = null;
async function loadRuns() {
  const runs = (await api("/v1/runs")).data;
  const table = $("runs-table");
  table.innerHTML = `<tr><th>${t("run_name")}</th><th>${t("steps")}</th><th>${t("status")}</th></tr>`;
  runs.forEach((r) => {
    const row = table.insertRow();
    const b = document.createElement("button");
    b.textContent = r.name; b.className = "cite"; b.type = "button";
    b.addEventListener("click", () => run(() => showRun(r.name, !r.finished)));
    row.insertCell().appendChild(b);
    row.insertCell().textContent = r.steps == null ? "" : r.steps;
    row.insertCell().textContent = r.finished ? t("finished") : t("running");
  });
}
async function showRun(name, live) {
  clearTimeout(runTimer);
  const m = await api(`/v1/runs/${encodeURIComponent(name)}/metrics`);
  drawChart(m.train, m.val);
  $("run-caption").textContent = `${name}: ${t("train_loss")} (${m.train.length}), ${t("val_loss")} (${m.val.length})`;
  $("run-figure").hidden = false;
  if (live && !$("models").hidden) runTimer = setTimeout(() => run(() => showRun(name, true)), 3000);
}
function drawChart(train, val, svgId) {
  const svg = $(svgId || "run-chart");
  const all = train.concat(val);
  if (!all.length) { svg.innerHTML = ""; return; }
  const W = 600, H = 260, P = 36;
  const maxStep = Math.max(...all.map((p) => p.step)), minL = Math.min(...all.map((p) => p.loss)), maxL = Math.max(...all.map((p) => p.loss));
  const x = (s) => P + (W - 2 * P) * s / Math.max(1, maxStep);
  const y = (l) => H - P - (H - 2 * P) * (l - minL) / Math.max(1e-9, maxL - minL);
  const line = (pts, color) => `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(" ")}"/>`;
  svg.innerHTML = `<line x1="${P}" y1="${H - P}" x2="${W - P}" y2="${H - P}" stroke="#888"/><line x1="${P}" y1="${P}" x2="${P}" y2="${H - P}" stroke="#888"/>` +
    `<text x="${P}" y="${P - 8}" font-size="12">${maxL.toFixed(2)}</text><text x="${P}" y="${H - 8}" font-size="12">${minL.toFixed(2)} · step ${maxStep}</text>` +
    line(train, "#1f5fbf") + line(val, "#c0392b") +
    val.map((p) => `<circle cx="${x(p.step).toFixed(1)}" cy="${y(p.loss).toFixed(1)}" r="3" fill="#c0392b"/>`).join("");
}
$("models-refresh").addEventListener("click", loadModels);

// ---- classify -----------------------------------------------------------------------------
function csvCell(v) { return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
async function classify(texts) {
  if (!texts.length) { showError(t("empty")); return; }
  const data = (await api("/v1/classify", { model: $("cls-model").value, input: texts, explain: texts.length <= 20 })).data;
  const table = $("cls-results");
  table.innerHTML = `<tr><th>${t("text")}</th><th>${t("label")}</th><th>${t("probability")}</th></tr>`;
  const rows = [["text", "label"].concat(Object.keys(data[0].probabilities))];
  data.forEach((d, i) => {
    const r = table.insertRow();
    r.insertCell().textContent = texts[i];
    r.insertCell().textContent = d.label;
    r.insertCell().textContent = Object.entries(d.probabilities).map(([k, p]) => `${k} ${p.toFixed(3)}`).join(", ");
    rows.push([texts[i], d.label].concat(Object.values(d.probabilities).map((p) => p.toFixed(6))));
  });
  showExplanation(data[0].explanation);
  const link = $("cls-download");
  link.href = URL.createObjectURL(new Blob([rows.map((r) => r.map(csvCell).join(",")).join("\n") + "\n"], { type: "text/csv" }));
  link.hidden = false;
}
$("cls-run").addEventListener("click", () => run(() => classify($("cls-input").value.split("\n").map((s) => s.trim()).filter(Boolean))));
$("cls-file").addEventListener("change", () => run(async () => {
  const file = $("cls-file").files[0];
  const text = await readUpload(file);
  const lines = text.split("\n").map((s) => s.trim()).filter(Boolean);
  await classify(file.name.toLowerCase().endsWith(".csv") ? lines.slice(1).map((l) => l.split(",")[0]) : lines);
}));

function showExplanation(tokens) { // the first text's tokens, coloured by the direction they pushed
  const box = $("cls-explain");
  box.textContent = "";
  if (!tokens || !tokens.length) return;
  box.appendChild(document.createTextNode(t("explained") + " "));
  tokens.forEach(([token, weight]) => {
    const mark = document.createElement("mark");
    mark.className = weight >= 0 ? "pos" : "neg";
    mark.textContent = token;
    mark.title = weight.toFixed(4);
    box.appendChild(mark);
    box.appendChild(document.createTextNode(" "));
  });
}

async function readUpload(file) {
  const dot = file.name.lastIndexOf(".");
  if (dot < 0 || !TEXT_TYPES.includes(file.name.slice(dot).toLowerCase())) throw new Error(`${file.name}: ${t("bad_type")}`);
  if (file.size > MAX_UPLOAD) throw new Error(`${file.name}: ${t("too_big")}`);
  const text = await file.text();
  if (!text.trim()) throw new Error(`${file.name}: ${t("empty")}`);
  return text;
}

// ---- writing ------------------------------------------------------------------------------
function csvRows(text) { // simple CSV (quoted fields allowed) -> list of objects
  const rows = [];
  let field = "", row = [], quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") { if (c === "\r" && text[i + 1] === "\n") i++; row.push(field); rows.push(row); row = []; field = ""; }
    else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  const [header, ...body] = rows.filter((r) => r.some((v) => v.trim()));
  return body.map((r) => Object.fromEntries(header.map((h, j) => [h, r[j] === undefined ? null : r[j]])));
}
function glossary() {
  const terms = {};
  for (const line of $("w-glossary").value.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const parts = line.split(",");
    if (parts.length !== 2 || !parts[0].trim() || !parts[1].trim()) throw new Error(t("bad_glossary"));
    terms[parts[0].trim()] = parts[1].trim();
  }
  return terms;
}
$("w-run").addEventListener("click", () => run(async () => {
  const task = $("w-task").value;
  const model = $("w-model").value || undefined;
  const out = $("w-output");
  out.textContent = "";
  $("w-report").hidden = true;
  if (task === "report") {
    const file = $("w-data").files[0];
    if (!file) { showError(t("need_data")); return; }
    const text = await file.text();
    let rows;
    try { rows = file.name.toLowerCase().endsWith(".json") ? JSON.parse(text) : csvRows(text); } catch (e) { throw new Error(`${file.name}: ${e.message}`); }
    const rep = await api("/v1/report", { data: rows, title: file.name, model });
    out.textContent = rep.narrative;
    $("w-report").srcdoc = rep.html;
    $("w-report").hidden = false;
    return;
  }
  const input = $("w-input").value.trim();
  if (!input) { showError(t("empty")); return; }
  let body;
  if (task === "summarize") body = { input, mode: $("w-mode").value, method: $("w-method").value, sentences: Number($("w-sentences").value), model };
  else if (task === "translate") body = { input, to: $("w-to").value, glossary: glossary(), model };
  else body = { kind: $("w-kind").value, topic: input, tone: $("w-tone").value || undefined, length: $("w-length").value,
                keywords: $("w-keywords").value.split(/[,，]/).map((k) => k.trim()).filter(Boolean), model };
  if (task === "summarize" && body.mode === "extractive") { out.textContent = (await api("/v1/summarize", body)).summary; return; }
  await streamSSE("/v1/" + task, Object.assign(body, { stream: true }), (ev) => {
    if (ev.text) out.textContent += ev.text;
    if (ev.done && ev.problems && ev.problems.length) showError(ev.problems.join("; "));
    if (ev.done && ev.glossary_missing && ev.glossary_missing.length) showError(ev.glossary_missing.map((g) => `${g.source} -> ${g.target}`).join("; "));
  });
}));

// ---- keys (admin) -------------------------------------------------------------------------
async function loadKeys() {
  const res = await fetch("/v1/keys", { headers: headers() });
  const denied = res.status === 401 || res.status === 403;
  $("keys-denied").hidden = !denied;
  $("keys-admin").hidden = denied;
  if (denied) return;
  const data = await res.json();
  if (!res.ok) throw new Error(data.error.message);
  const table = $("keys-table");
  table.innerHTML = `<tr><th>id</th><th>${t("key_name")}</th><th>${t("admin")}</th><th>${t("status")}</th><th>${t("requests")}</th><th>${t("tokens")}</th><th></th></tr>`;
  data.data.forEach((k) => {
    const r = table.insertRow();
    [k.id, k.name, k.admin ? "✓" : "", k.revoked ? t("revoked") : t("active"), k.requests, k.prompt_tokens + k.completion_tokens]
      .forEach((v) => { r.insertCell().textContent = v; });
    const cell = r.insertCell();
    if (!k.revoked) {
      const b = document.createElement("button");
      b.textContent = t("revoke"); b.type = "button";
      b.addEventListener("click", () => run(async () => { await api(`/v1/keys/${k.id}`, null, "DELETE"); await loadKeys(); }));
      cell.appendChild(b);
    }
  });
}
$("keys-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(async () => {
    const name = $("key-name").value.trim();
    if (!name) { showError(t("empty")); return; }
    const body = { name, admin: $("key-admin").checked };
    if ($("key-rpm").value) body.rpm = Number($("key-rpm").value);
    if ($("key-tpm").value) body.tpm = Number($("key-tpm").value);
    const made = await api("/v1/keys", body);
    $("key-secret").textContent = t("new_key") + " " + made.key;
    $("key-secret").hidden = false;
    if (!$("api-key").value && made.admin) { // the first key: from now on every call needs it, so use it here
      $("api-key").value = made.key;
      localStorage.setItem("loom-key", made.key);
    }
    await loadKeys();
  });
});
document.querySelector("[data-tab=keys]").addEventListener("click", () => run(loadKeys));

applyLanguage(LANG);
selectTab((location.hash || "#chat").slice(1));
loadModels();
