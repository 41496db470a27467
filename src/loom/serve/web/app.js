// Loom's web pages: plain JS written here, calling only the public HTTP API (/v1/...).
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

// ---- tabs and language --------------------------------------------------------------------
function selectTab(name) {
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
function fill(select, items, keepFirst) {
  const first = keepFirst ? select.options[0] : null;
  select.innerHTML = "";
  if (first) select.appendChild(first);
  items.forEach((m) => { const o = document.createElement("option"); o.value = o.textContent = m.id; select.appendChild(o); });
}
async function loadModels() {
  await run(async () => {
    MODELS = (await api("/v1/models")).data;
    const generate = MODELS.filter((m) => m.task === "generate");
    fill($("chat-model"), generate);
    fill($("cls-model"), MODELS.filter((m) => m.task === "classify"));
    fill($("w-model"), generate.filter((m) => !m.id.startsWith("support:")), true);
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

// ---- chat ---------------------------------------------------------------------------------
// The history sent with every request: user turns, assistant turns (with their tool_calls), and
// {role: "tool"} results typed into the transcript. Model text is only ever set as textContent.
let history = [];
let controller = null;
function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = (role === "user" ? "› " : "") + text;
  $("chat-log").appendChild(div);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return div;
}
function jsonField(id, label) { // a JSON textarea: undefined when empty; bad JSON is an error naming the field
  const raw = $(id).value.trim();
  if (!raw) return undefined;
  try { return JSON.parse(raw); } catch (e) { throw new Error(`${t(label)}: ${t("bad_json")} (${e.message})`); }
}
function chatTools() {
  const tools = jsonField("chat-tools", "tools_json");
  if (tools !== undefined && (!Array.isArray(tools) || tools.some((x) => !x || !x.function || typeof x.function.name !== "string")))
    throw new Error(`${t("tools_json")}: ${t("need_tools")}`);
  return tools;
}
function chatExtras() { // the Advanced settings as request fields (throws on bad JSON: nothing is sent)
  const extra = {};
  const tools = chatTools();
  if (tools && tools.length) {
    const choice = $("chat-tool-choice").value;
    extra.tools = tools;
    extra.tool_choice = choice.startsWith("fn:") ? { type: "function", function: { name: choice.slice(3) } } : choice;
  }
  const schema = jsonField("chat-schema", "json_schema");
  if (schema !== undefined) {
    if (!schema || typeof schema !== "object" || Array.isArray(schema)) throw new Error(`${t("json_schema")}: ${t("need_object")}`);
    extra.response_format = { type: "json_schema", json_schema: { name: "response", schema, strict: true } };
  }
  if ($("chat-logprobs").checked) { extra.logprobs = true; extra.top_logprobs = 5; }
  return extra;
}
function chatBody(stream) {
  const system = $("chat-system").value.trim();
  return Object.assign({ model: $("chat-model").value, stream, temperature: Number($("chat-temp").value), top_p: Number($("chat-top-p").value),
                         max_tokens: Number($("chat-max").value),
                         messages: (system ? [{ role: "system", content: system }] : []).concat(history) }, chatExtras());
}
// The tool choice offers each declared tool by name ("fn:NAME") besides auto / required / none.
function refreshToolChoice() {
  let tools;
  try { tools = chatTools() || []; } catch (e) { return; } // reported when sending
  const select = $("chat-tool-choice");
  const chosen = select.value;
  [...select.options].filter((o) => o.value.startsWith("fn:")).forEach((o) => o.remove());
  tools.forEach((x) => { const o = document.createElement("option"); o.value = "fn:" + x.function.name; o.textContent = "→ " + x.function.name; select.appendChild(o); });
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "auto";
}
$("chat-tools").addEventListener("input", refreshToolChoice);

function percent(p) { return p >= 0.01 ? p.toFixed(2) : p.toExponential(1); }
function quoted(token) { return "'" + token.replace(/\n/g, "\\n").replace(/\t/g, "\\t") + "'"; }
function tokenSpan(entry) { // one generated token, tinted by its probability; the tooltip lists the alternatives
  const span = document.createElement("span");
  const p = Math.exp(entry.logprob);
  span.className = "tok " + (p < 0.3 ? "p-low" : p < 0.7 ? "p-mid" : "p-high");
  span.textContent = entry.token;
  const top = (entry.top_logprobs || []).map((a) => `${quoted(a.token)} ${percent(Math.exp(a.logprob))}`);
  span.title = `p = ${percent(p)}` + (top.length ? `\n${t("top_tokens")}: ${top.join(", ")}` : "");
  return span;
}
// The reply's text: plain, or one span per token when logprobs came back (appended as they arrive).
// Text the tokens do not cover yet follows as plain text; tokens that disagree with the text: plain text.
function replyView(box) {
  let rendered = 0, joined = "", plain = false;
  const tail = document.createTextNode("");
  box.appendChild(tail);
  return (text, tokens) => {
    if (!plain) {
      for (; rendered < tokens.length; rendered++) { joined += tokens[rendered].token; box.insertBefore(tokenSpan(tokens[rendered]), tail); }
      if (!text.startsWith(joined)) { plain = true; box.textContent = ""; box.appendChild(tail); }
    }
    tail.data = plain ? text : text.slice(joined.length);
  };
}
function prettyArguments(args) {
  try { return JSON.stringify(JSON.parse(args), null, 2); } catch (e) { return args; }
}
function callBlock(msg) {
  const block = document.createElement("div");
  block.className = "tool-call";
  const name = document.createElement("div");
  name.className = "tool-name";
  const args = document.createElement("pre");
  args.className = "tool-args";
  block.append(name, args);
  msg.appendChild(block);
  return block;
}
function showCall(block, call) {
  block.querySelector(".tool-name").textContent = `${t("tool_call")}: ${call.function.name}`;
  block.querySelector(".tool-args").textContent = prettyArguments(call.function.arguments);
}
// No tools run in the browser: each call gets a box for its result; when every call of the reply has
// one, the conversation goes on with the same settings.
function offerResult(block, call, pending) {
  const form = document.createElement("div");
  form.className = "row";
  const label = document.createElement("label");
  label.className = "grow";
  const caption = document.createElement("span");
  caption.textContent = t("tool_result");
  const input = document.createElement("textarea");
  input.rows = 2;
  input.className = "tool-result-input";
  label.append(caption, input);
  const send = document.createElement("button");
  send.type = "button";
  send.className = "tool-send";
  send.textContent = t("send_result");
  form.append(label, send);
  block.appendChild(form);
  send.addEventListener("click", () => run(async () => {
    if ($("chat-send").disabled) return; // a reply is still coming
    chatExtras(); // settings that would fail the follow-up fail here, before the result is recorded
    history.push({ role: "tool", tool_call_id: call.id, content: input.value });
    form.remove();
    const shown = addMessage("tool", "");
    const head = document.createElement("div");
    head.className = "tool-name";
    head.textContent = `${t("tool_result")}: ${call.function.name}`;
    const body = document.createElement("pre");
    body.textContent = input.value;
    shown.append(head, body);
    pending.delete(call.id);
    if (!pending.size) await reply();
  }));
}
// One assistant turn for the history so far, streamed: text (as token spans with logprobs) and tool
// calls assembled from their deltas by index.
async function reply() {
  const body = chatBody(true);
  const msg = addMessage("assistant", "");
  const text = document.createElement("div");
  msg.appendChild(text);
  const show = replyView(text);
  let content = "", finish = null, received = false, failure = null;
  const tokens = [], calls = [], blocks = [];
  controller = new AbortController();
  $("chat-stop").disabled = false;
  $("chat-send").disabled = true;
  try {
    await streamSSE("/v1/chat/completions", body, (ev) => {
      const choice = ev.choices && ev.choices[0];
      if (!choice) return;
      received = true;
      const delta = choice.delta || {};
      const scored = (choice.logprobs && choice.logprobs.content) || [];
      if (delta.content) content += delta.content;
      tokens.push(...scored);
      if (delta.content || scored.length) show(content, tokens);
      (delta.tool_calls || []).forEach((d) => {
        const call = calls[d.index] || (calls[d.index] = { id: "", type: "function", function: { name: "", arguments: "" } });
        if (d.id) call.id = d.id;
        if (d.function && d.function.name) call.function.name = d.function.name;
        if (d.function && d.function.arguments) call.function.arguments += d.function.arguments;
        showCall(blocks[d.index] || (blocks[d.index] = callBlock(msg)), call);
      });
      if (choice.finish_reason) finish = choice.finish_reason;
      $("chat-log").scrollTop = $("chat-log").scrollHeight;
    }, controller.signal);
  } catch (err) {
    if (err.name !== "AbortError") failure = err;
  } finally {
    $("chat-stop").disabled = true;
    $("chat-send").disabled = false;
  }
  if (failure && !received) { msg.remove(); failure.unsent = true; throw failure; } // refused: no turn happened
  const message = { role: "assistant", content };
  if (finish === "tool_calls" && calls.length) { // calls cut short (Stop, the token limit) are shown but not sent back
    message.content = content || null;
    message.tool_calls = calls.filter(Boolean);
    const pending = new Set(message.tool_calls.map((c) => c.id));
    calls.forEach((call, i) => call && offerResult(blocks[i], call, pending));
  }
  history.push(message);
  if (failure) throw failure;
}
$("chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text) { showError(t("empty")); return; }
  run(async () => {
    chatExtras(); // bad JSON in the Advanced settings: an error, and nothing is sent
    history.push({ role: "user", content: text });
    const shown = addMessage("user", text);
    $("chat-input").value = "";
    try {
      await reply();
    } catch (err) {
      if (err.unsent) { history.pop(); shown.remove(); $("chat-input").value = text; } // refused (e.g. a bad schema): try again
      throw err;
    }
  });
});
$("chat-stop").addEventListener("click", () => controller && controller.abort());
$("chat-reset").addEventListener("click", () => { history = []; $("chat-log").innerHTML = ""; });
function pyValue(v) { // a JSON value as a Python literal
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (Array.isArray(v)) return "[" + v.map(pyValue).join(", ") + "]";
  if (typeof v === "object") return "{" + Object.entries(v).map(([k, x]) => JSON.stringify(k) + ": " + pyValue(x)).join(", ") + "}";
  return JSON.stringify(v);
}
$("copy-curl").addEventListener("click", () => run(async () => showCode(
  `curl ${location.origin}/v1/chat/completions -H 'Content-Type: application/json'` +
  ($("api-key").value ? ` -H 'Authorization: Bearer $LOOM_KEY'` : "") + ` \\\n  -d '${JSON.stringify(chatBody(false)).replace(/'/g, "'\\''")}'`)));
$("copy-python").addEventListener("click", () => run(async () => {
  const b = chatBody(false);
  const extra = ["tools", "tool_choice", "response_format", "logprobs", "top_logprobs"].filter((k) => k in b)
    .map((k) => `,\n    ${k}=${pyValue(b[k])}`).join("");
  const shown = b.tools ? "reply.choices[0].message.tool_calls or reply.choices[0].message.content" : "reply.choices[0].message.content";
  showCode((b.logprobs ? "import math\n" : "") + `from openai import OpenAI\nclient = OpenAI(base_url="${location.origin}/v1", api_key="${$("api-key").value ? "YOUR_LOOM_KEY" : "unused"}")\n` +
           `reply = client.chat.completions.create(model=${JSON.stringify(b.model)}, temperature=${b.temperature}, top_p=${b.top_p}, max_tokens=${b.max_tokens},\n` +
           `    messages=${pyValue(b.messages)}${extra})\nprint(${shown})` +
           (b.logprobs ? "\nfor t in reply.choices[0].logprobs.content or []:  # each token and its probability\n    print(repr(t.token), round(math.exp(t.logprob), 3))" : ""));
}));
function showCode(code) {
  $("chat-code").textContent = code;
  $("chat-code").hidden = false;
  if (navigator.clipboard) navigator.clipboard.writeText(code).catch(() => {});
}

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

// ---- knowledge bases ----------------------------------------------------------------------
$("kb-create").addEventListener("click", () => run(async () => {
  const name = $("kb-new").value.trim();
  if (!name) { showError(t("empty")); return; }
  await api("/v1/kb", { name });
  await loadModels();
  $("kb-name").value = name;
}));
const KB_TYPES = [...TEXT_TYPES, ".pdf", ".docx"];
async function uploadFile(kb, file) { // multipart: the server reads the bytes (PDF and .docx included)
  const dot = file.name.lastIndexOf(".");
  if (dot < 0 || !KB_TYPES.includes(file.name.slice(dot).toLowerCase())) throw new Error(`${file.name}: ${t("bad_type")}`);
  if (file.size > MAX_UPLOAD) throw new Error(`${file.name}: ${t("too_big")}`);
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
    const reply = await api("/v1/chat/completions", { model: "support:" + $("kb-name").value, messages: kbHistory });
    const message = reply.choices[0].message;
    kbHistory.push({ role: "assistant", content: message.content });
    // How the answer was made: a hand-off is said plainly, so nobody mistakes it for an answer.
    const how = reply.choices[0].loom || {};
    $("kb-answer-meta").textContent = how.handoff ? t("answer_handoff")
      : how.mode ? `${t("answer_" + how.mode)} · ${t("confidence")} ${Number(how.confidence).toFixed(2)}` : "";
    const box = $("kb-answer");
    box.textContent = "";
    // Citation markers [n] become buttons that open the cited passage.
    message.content.split(/(\[\d+\])/).forEach((part) => {
      const m = part.match(/^\[(\d+)\]$/);
      const cite = m && (message.citations || []).find((c) => c.n === Number(m[1]));
      if (!cite) { box.appendChild(document.createTextNode(part)); return; }
      const b = document.createElement("button");
      b.className = "cite"; b.textContent = part; b.type = "button";
      b.addEventListener("click", () => { $("kb-cited-text").textContent = `${cite.source}\n\n${cite.text}`; $("kb-cited").open = true; });
      box.appendChild(b);
    });
  });
});
$("kb-handoffs-load").addEventListener("click", () => run(async () => {
  const rows = (await api(`/v1/kb/${encodeURIComponent($("kb-name").value)}/handoffs`)).data;
  $("kb-handoffs").innerHTML = "";
  rows.forEach((r) => { const li = document.createElement("li"); li.textContent = `${new Date(r.ts * 1000).toLocaleString()} — ${r.question}`; $("kb-handoffs").appendChild(li); });
}));

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
