// The Chat tab (the playground): a streamed conversation with any generate model, replies rendered
// as Markdown (markdown.js), Stop and Regenerate, the Advanced settings (tools, JSON Schema, token
// probabilities), images as OpenAI content parts (chatimages.js), conversations kept in the browser
// (chatstore.js), and the request as curl or Python.
// Uses app.js's helpers ($, run, t, showError, streamSSE, copyText, MAX_UPLOAD) and chatvoice.js's speakButton.
"use strict";

// convo.messages (chatstore.js) is the history sent with every request: user turns (text, or text and
// image parts), assistant turns (with their tool_calls) and {role: "tool"} results typed into the
// transcript. Keys starting with "_" are the page's own (a reply's OCR note) and are not sent.
// Model text reaches the page as textContent, or as HTML from renderMarkdown, which escapes it first.
let controller = null; // while a reply streams
function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("chat-log").appendChild(div);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return div;
}
function keepDown(change) { // the transcript follows a growing reply unless the reader scrolled up
  const log = $("chat-log");
  const following = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  change();
  if (following) log.scrollTop = log.scrollHeight;
}
// A reply: its text (.md: Markdown, or token spans), tool calls and notes, and a Copy button under it
// that copies the reply as written (msg.raw, its Markdown).
function assistantMessage() {
  const msg = addMessage("assistant", "");
  msg.textBox = document.createElement("div");
  msg.textBox.className = "md";
  msg.appendChild(msg.textBox);
  msg.raw = "";
  msg.actions = document.createElement("div");
  msg.actions.className = "msg-actions";
  const copy = document.createElement("button");
  copy.type = "button"; copy.className = "copy-msg"; copy.dataset.i18n = "copy"; copy.textContent = t("copy");
  copy.addEventListener("click", () => copyText(msg.raw, copy));
  msg.actions.appendChild(copy);
  speakButton(() => msg.raw).then((b) => { if (b) msg.actions.appendChild(b); }).catch(() => {}); // when the server speaks
  msg.actions.hidden = true; // until the reply has text
  msg.after(msg.actions);
  return msg;
}
function markdownView(box) { // re-rendered at most once a frame while the reply streams
  let frame = 0, latest = "";
  const draw = () => { frame = 0; keepDown(() => { box.innerHTML = renderMarkdown(latest); }); };
  const show = (text) => { latest = text; if (!frame) frame = requestAnimationFrame(draw); };
  show.flush = () => { if (frame) { cancelAnimationFrame(frame); draw(); } };
  return show;
}
function showToolResult(content, name) {
  const shown = addMessage("tool", "");
  const head = document.createElement("div");
  head.className = "tool-name";
  head.textContent = `${t("tool_result")}: ${name}`;
  const body = document.createElement("pre");
  body.textContent = content;
  shown.append(head, body);
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
function apiMessage(m) { return Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith("_"))); }
function chatBody(stream) {
  const system = $("chat-system").value.trim();
  return Object.assign({ model: $("chat-model").value, stream, temperature: Number($("chat-temp").value), top_p: Number($("chat-top-p").value),
                         max_tokens: Number($("chat-max").value),
                         messages: (system ? [{ role: "system", content: system }] : []).concat(convo.messages.map(apiMessage)) }, chatExtras());
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
  const conv = convo;
  send.addEventListener("click", () => run(async () => {
    if ($("chat-send").disabled || conv !== convo) return; // a reply is still coming
    chatExtras(); // settings that would fail the follow-up fail here, before the result is recorded
    conv.messages.push({ role: "tool", tool_call_id: call.id, content: input.value });
    form.remove();
    showToolResult(input.value, call.function.name);
    pending.delete(call.id);
    saveChat(conv);
    if (!pending.size) await reply();
  }));
}
// One assistant turn for the history so far, streamed: text (Markdown, or token spans with logprobs)
// and tool calls assembled from their deltas by index. Stopped, it keeps what came.
async function reply() {
  const conv = convo;
  const body = chatBody(true);
  if (new Blob([JSON.stringify(body)]).size > MAX_UPLOAD) // the server would answer 413: say why, send nothing
    throw Object.assign(new Error(t("chat_too_big")), { unsent: true });
  conv.model = body.model;
  const msg = assistantMessage();
  if (body.logprobs) msg.textBox.className = "tokens";
  const show = body.logprobs ? replyView(msg.textBox) : markdownView(msg.textBox);
  let content = "", finish = null, received = false, failure = null, extra = null;
  const tokens = [], calls = [], blocks = [];
  const mine = controller = new AbortController();
  updateButtons();
  try {
    await streamSSE("/v1/chat/completions", body, (ev) => keepDown(() => {
      if (ev.loom) extra = ev.loom; // on the first event only: what happened to the images
      const choice = ev.choices && ev.choices[0];
      if (!choice) return;
      received = true;
      const delta = choice.delta || {};
      const scored = (choice.logprobs && choice.logprobs.content) || [];
      if (delta.content) { msg.raw = content += delta.content; msg.actions.hidden = false; }
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
    }), mine.signal);
  } catch (err) {
    if (err.name !== "AbortError") failure = err;
  } finally {
    if (show.flush) show.flush();
    if (controller === mine) controller = null;
    updateButtons();
  }
  if (failure && !received) { msg.actions.remove(); msg.remove(); failure.unsent = true; throw failure; } // refused: no turn happened
  const message = { role: "assistant", content };
  const note = extra ? ocrNote(msg, extra, body.messages.length - 1) : "";
  if (note) message._note = note;
  if (finish === "tool_calls" && calls.length) { // calls cut short (Stop, the token limit) are shown but not sent back
    message.content = content || null;
    message.tool_calls = calls.filter(Boolean);
    const pending = new Set(message.tool_calls.map((c) => c.id));
    calls.forEach((call, i) => call && offerResult(blocks[i], call, pending));
  }
  conv.messages.push(message);
  saveChat(conv);
  if (failure) throw failure;
}
function stopReply() { if (controller) controller.abort(); }
function updateButtons() {
  const streaming = controller !== null;
  $("chat-send").disabled = streaming;
  $("chat-stop").disabled = !streaming;
  $("chat-regen").disabled = streaming || !convo.messages.some((m) => m.role === "user");
}
function pickModel(name) { // a conversation's model, when the server still offers it
  const select = $("chat-model");
  if (!name) return;
  if (!select.options.length) select.dataset.want = name; // the list is still loading: fill() takes it
  else if ([...select.options].some((o) => o.value === name)) select.value = name;
}
function toolName(messages, id) {
  const call = messages.flatMap((m) => m.tool_calls || []).find((c) => c.id === id);
  return call ? call.function.name : "";
}
// The transcript drawn from the conversation (opened, reloaded, or cut for Regenerate). Tool calls of
// the last reply still waiting for their results get their boxes back.
function renderChat() {
  $("chat-log").textContent = "";
  const messages = convo.messages;
  const last = messages.map((m) => m.role).lastIndexOf("assistant");
  messages.forEach((m, i) => {
    if (m.role === "user") {
      const shown = addMessage("user", messageText(m.content));
      const images = Array.isArray(m.content) ? m.content.filter((p) => p.type === "image_url").map((p) => ({ name: "", url: p.image_url.url })) : [];
      if (images.length) shown.appendChild(thumbnails(images));
    } else if (m.role === "assistant") {
      const msg = assistantMessage();
      msg.raw = m.content || "";
      msg.actions.hidden = !msg.raw;
      msg.textBox.innerHTML = renderMarkdown(msg.raw);
      const answered = new Set(messages.slice(i + 1).filter((x) => x.role === "tool").map((x) => x.tool_call_id));
      const pending = new Set(i === last ? (m.tool_calls || []).map((c) => c.id).filter((id) => !answered.has(id)) : []);
      (m.tool_calls || []).forEach((call) => {
        const block = callBlock(msg);
        showCall(block, call);
        if (pending.has(call.id)) offerResult(block, call, pending);
      });
      if (m._note) showNote(msg, m._note);
    } else if (m.role === "tool") showToolResult(m.content, toolName(messages, m.tool_call_id));
  });
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  updateButtons();
}
$("chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if ($("chat-send").disabled) return; // Enter while a reply is coming
  const text = $("chat-input").value.trim();
  const images = attached;
  if (!text && !images.length) { showError(t("empty")); return; }
  run(async () => {
    chatExtras(); // bad JSON in the Advanced settings: an error, and nothing is sent
    const conv = convo;
    // With images, OpenAI's content parts: the text first, then each image as a data URL.
    const parts = (text ? [{ type: "text", text }] : []).concat(images.map((im) => ({ type: "image_url", image_url: { url: im.url } })));
    conv.messages.push({ role: "user", content: images.length ? parts : text });
    conv.system = $("chat-system").value;
    const shown = addMessage("user", text);
    if (images.length) shown.appendChild(thumbnails(images));
    $("chat-input").value = "";
    $("chat-input").style.height = "";
    attached = [];
    showAttached();
    saveChat(conv); // the question outlives a reload during the reply
    try {
      await reply();
    } catch (err) {
      if (err.unsent) { // refused (e.g. a bad schema, too large): everything back in place to try again
        conv.messages.pop(); saveChat(conv); shown.remove(); $("chat-input").value = text; attached = images; showAttached(); updateButtons();
      }
      throw err;
    }
  });
});
// Enter sends (as in WeChat; phones' keyboards show "Send"), Shift+Enter starts a new line; an Enter
// that an input method is composing with (pinyin picking its candidate) is the input method's.
$("chat-input").addEventListener("keydown", (e) => {
  if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;
  e.preventDefault();
  $("chat-form").requestSubmit();
});
$("chat-input").addEventListener("input", () => { // the box grows with the message, up to a few lines
  const box = $("chat-input");
  box.style.height = "";
  box.style.height = Math.min(box.scrollHeight + 2, 200) + "px";
});
$("chat-stop").addEventListener("click", stopReply);
// Regenerate: the last reply is dropped and asked for again (after tool results: the answer that used them).
$("chat-regen").addEventListener("click", () => run(async () => {
  if (controller) return;
  const conv = convo, messages = conv.messages;
  let cut = messages.length;
  while (cut > 0 && messages[cut - 1].role === "assistant") cut--;
  if (!messages.slice(0, cut).some((m) => m.role === "user")) return;
  const dropped = messages.splice(cut);
  renderChat();
  try {
    await reply();
  } catch (err) {
    if (err.unsent && conv === convo) { messages.push(...dropped); renderChat(); }
    throw err;
  }
}));
$("chat-model").addEventListener("change", () => { convo.model = $("chat-model").value; if (convo.messages.length) saveChat(convo); });
$("chat-system").addEventListener("change", () => { convo.system = $("chat-system").value; if (convo.messages.length) saveChat(convo); });
// The settings are a column beside the transcript on wide windows and fold away above it on narrow ones.
const wideChat = matchMedia("(min-width: 1000px)");
const placeSettings = () => { $("chat-settings").open = wideChat.matches; };
wideChat.addEventListener("change", placeSettings);
placeSettings();
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
  copyText(code);
}

openChat(localStorage.getItem(CURRENT_KEY)); // the conversation open before the reload, or a new one
