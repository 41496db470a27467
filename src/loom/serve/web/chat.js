// The Chat tab (the playground): a streamed conversation with any generate model, its Advanced
// settings (tools, JSON Schema, token probabilities), images sent as OpenAI content parts, and the
// request as curl or Python. Uses app.js's helpers ($, run, t, showError, streamSSE, MAX_UPLOAD).
"use strict";

// The history sent with every request: user turns (text, or text and image parts), assistant turns
// (with their tool_calls), and {role: "tool"} results typed into the transcript. Model text is only
// ever set as textContent.
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
  if (new Blob([JSON.stringify(body)]).size > MAX_UPLOAD) // the server would answer 413: say why, send nothing
    throw Object.assign(new Error(t("chat_too_big")), { unsent: true });
  const msg = addMessage("assistant", "");
  const text = document.createElement("div");
  msg.appendChild(text);
  const show = replyView(text);
  let content = "", finish = null, received = false, failure = null, extra = null;
  const tokens = [], calls = [], blocks = [];
  controller = new AbortController();
  $("chat-stop").disabled = false;
  $("chat-send").disabled = true;
  try {
    await streamSSE("/v1/chat/completions", body, (ev) => {
      if (ev.loom) extra = ev.loom; // on the first event only: what happened to the images
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
  if (extra) ocrNote(msg, extra, body.messages.length - 1);
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
  const images = attached;
  if (!text && !images.length) { showError(t("empty")); return; }
  run(async () => {
    chatExtras(); // bad JSON in the Advanced settings: an error, and nothing is sent
    // With images, OpenAI's content parts: the text first, then each image as a data URL.
    const parts = (text ? [{ type: "text", text }] : []).concat(images.map((im) => ({ type: "image_url", image_url: { url: im.url } })));
    history.push({ role: "user", content: images.length ? parts : text });
    const shown = addMessage("user", text);
    if (images.length) shown.appendChild(thumbnails(images));
    $("chat-input").value = "";
    attached = [];
    showAttached();
    try {
      await reply();
    } catch (err) {
      if (err.unsent) { // refused (e.g. a bad schema, too large): everything back in place to try again
        history.pop(); shown.remove(); $("chat-input").value = text; attached = images; showAttached();
      }
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
// Image data URLs are cut short in the code: megabytes of base64 would bury it (the cut says so).
function codeBody() {
  const b = chatBody(false);
  const short = (p) => (p.type !== "image_url" ? p : { type: "image_url", image_url: { url:
    p.image_url.url.slice(0, p.image_url.url.indexOf(",") + 1) + `<${Math.round(p.image_url.url.length / 1024)} KB of base64 left out>` } });
  b.messages = b.messages.map((m) => (Array.isArray(m.content) ? Object.assign({}, m, { content: m.content.map(short) }) : m));
  return b;
}
$("copy-curl").addEventListener("click", () => run(async () => showCode(
  `curl ${location.origin}/v1/chat/completions -H 'Content-Type: application/json'` +
  ($("api-key").value ? ` -H 'Authorization: Bearer $LOOM_KEY'` : "") + ` \\\n  -d '${JSON.stringify(codeBody()).replace(/'/g, "'\\''")}'`)));
$("copy-python").addEventListener("click", () => run(async () => {
  const b = codeBody();
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


// ---- images: dropped on the message box, pasted, or picked; shown as chips until sent -------------
// They go as data URLs (the server fetches no http(s) images for its callers). A whole request must
// stay under the server's body limit (4 MB unless max_body_bytes says otherwise), so an image whose
// data URL would pass MAX_IMAGE_URL is redrawn smaller on a canvas and sent as JPEG: OCR needs legible
// text, not a phone camera's every pixel (a 2,400-pixel side keeps a printed page readable).
const MAX_IMAGE_URL = 3 * 1024 * 1024; // characters of base64 for one image
let attached = []; // [{name, url}] for the next message

function readDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`${file.name}: ${t("unreadable")}`));
    reader.readAsDataURL(file);
  });
}
async function shrink(file) { // a JPEG data URL under MAX_IMAGE_URL, or null (the browser cannot decode it, or no size fits)
  let bitmap;
  try { bitmap = await createImageBitmap(file); } catch (e) { return null; }
  const canvas = document.createElement("canvas");
  let scale = Math.min(1, 2400 / Math.max(bitmap.width, bitmap.height));
  for (let tries = 0; tries < 6; tries++, scale *= 0.75) {
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; // transparent areas become white, not JPEG's black
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const url = canvas.toDataURL("image/jpeg", 0.88);
    if (url.length <= MAX_IMAGE_URL) return url;
  }
  return null;
}
async function attach(files) { // every image that can go is added; the others are named in one message
  const problems = [];
  for (const file of files) {
    const name = file.name || "image";
    if (!file.type.startsWith("image/")) { problems.push(`${name}: ${t("not_image")}`); continue; }
    const url = file.size * 4 / 3 + 100 > MAX_IMAGE_URL ? await shrink(file) : await readDataURL(file);
    if (url) attached.push({ name, url }); else problems.push(`${name}: ${t("image_too_big")}`);
  }
  showAttached();
  if (problems.length) throw new Error(problems.join(" "));
}
function showAttached() {
  const box = $("chat-images");
  box.textContent = "";
  box.hidden = !attached.length;
  attached.forEach((image) => {
    const chip = document.createElement("span");
    chip.className = "chip";
    const img = document.createElement("img");
    img.src = image.url; img.alt = img.title = image.name;
    const remove = document.createElement("button");
    remove.type = "button"; remove.textContent = "×";
    remove.title = `${t("remove_image")}: ${image.name}`;
    remove.setAttribute("aria-label", remove.title);
    remove.addEventListener("click", () => { attached = attached.filter((a) => a !== image); showAttached(); $("chat-input").focus(); });
    chip.append(img, remove);
    box.appendChild(chip);
  });
}
function thumbnails(images) { // the user's images in the transcript
  const box = document.createElement("div");
  box.className = "msg-images";
  images.forEach((image) => {
    const img = document.createElement("img");
    img.className = "thumb"; img.src = image.url; img.alt = img.title = image.name;
    box.appendChild(img);
  });
  return box;
}
// Under a reply, when the model read the images of the newest message as OCR text: say so, since a
// text-only model answered without seeing the pictures (the server's own note is the tooltip).
function ocrNote(msg, extra, newest) {
  const read = (extra.images || []).filter((i) => i.handled === "ocr" && i.message === newest);
  if (!read.length) return;
  const characters = read.reduce((n, i) => n + (i.characters || 0), 0);
  const note = document.createElement("div");
  note.className = "muted ocr-note";
  note.textContent = characters ? t("ocr_note").replace("{n}", characters) : t("ocr_none");
  if (extra.note) note.title = extra.note;
  msg.appendChild(note);
}
const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files"); // not dragged text
const chatForm = $("chat-form");
chatForm.addEventListener("dragover", (e) => { if (hasFiles(e)) { e.preventDefault(); chatForm.classList.add("over"); } });
chatForm.addEventListener("dragleave", () => chatForm.classList.remove("over"));
chatForm.addEventListener("drop", (e) => {
  chatForm.classList.remove("over");
  if (!hasFiles(e)) return;
  e.preventDefault();
  run(() => attach([...e.dataTransfer.files]));
});
$("chat-input").addEventListener("paste", (e) => {
  const files = [...((e.clipboardData && e.clipboardData.files) || [])];
  if (!files.length) return; // text is pasted as usual
  e.preventDefault();
  run(() => attach(files));
});
$("chat-attach").addEventListener("click", () => $("chat-file").click());
$("chat-file").addEventListener("change", () => run(async () => {
  const files = [...$("chat-file").files];
  $("chat-file").value = ""; // the same file can be picked again
  await attach(files);
}));
$("lang").addEventListener("click", showAttached); // the chips' tooltips in the new language
