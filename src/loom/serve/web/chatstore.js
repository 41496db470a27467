// The chat's conversations, kept in this browser's localStorage: an index of {id, title, model,
// updated} under "loom-chats" (newest first), each conversation under "loom-chat:ID" ({title, model,
// system, messages}: the OpenAI messages sent back with every request), and the open one's id under
// "loom-chat-current", so a reload reopens it. A site gets about 5 MB there: an image whose data URL
// is over IMAGE_KEEP characters is stored as a short text placeholder (it stays in the conversation
// until the page is closed), and when storage is full the conversation goes on unsaved and the page
// says so. The list: a sidebar on wide windows, a select on narrow ones.
// Uses app.js's helpers ($, run, t, showError) and chat.js's renderChat, stopReply, pickModel.
"use strict";

const CHATS_KEY = "loom-chats", CHAT_KEY = "loom-chat:", CURRENT_KEY = "loom-chat-current";
const IMAGE_KEEP = 200 * 1024; // characters of data URL

function readJSON(key) {
  try { return JSON.parse(localStorage.getItem(key)); } catch (e) { return null; }
}
function chatTitle(messages) { // the first question, shortened
  const first = messages.find((m) => m.role === "user");
  const text = first ? messageText(first.content).replace(/\s+/g, " ").trim() : "";
  return !text ? t("untitled") : text.length > 48 ? text.slice(0, 47) + "…" : text;
}
function messageText(content) { // a message's text: a string, or its text parts
  if (Array.isArray(content)) return content.filter((p) => p.type === "text").map((p) => p.text).join("\n");
  return content || "";
}
function storedMessages(messages, keep) { // image data URLs longer than `keep` become a text placeholder
  return messages.map((m) => (!Array.isArray(m.content) ? m : Object.assign({}, m, { content: m.content.map((p) =>
    (p.type === "image_url" && p.image_url.url.length > keep ? { type: "text", text: t("image_not_kept") } : p)) })));
}

const chatStore = {
  list() { const index = readJSON(CHATS_KEY); return Array.isArray(index) ? index : []; },
  load(id) {
    const saved = id && readJSON(CHAT_KEY + id);
    return saved && Array.isArray(saved.messages) ? Object.assign(saved, { id }) : null;
  },
  save(chat) { // false when the browser's storage is full
    if (!chat.messages.length) { chat.title = ""; this.remove(chat.id); return true; }
    chat.title = chat.title || chatTitle(chat.messages);
    chat.updated = Date.now();
    const index = [{ id: chat.id, title: chat.title, model: chat.model, updated: chat.updated }].concat(this.list().filter((c) => c.id !== chat.id));
    for (const keep of [IMAGE_KEEP, 0]) { // full: once more with no images at all
      try {
        localStorage.setItem(CHAT_KEY + chat.id, JSON.stringify({ title: chat.title, model: chat.model, system: chat.system,
                                                                   updated: chat.updated, messages: storedMessages(chat.messages, keep) }));
        localStorage.setItem(CHATS_KEY, JSON.stringify(index));
        return true;
      } catch (e) { /* QuotaExceededError */ }
    }
    return false;
  },
  remove(id) {
    localStorage.removeItem(CHAT_KEY + id);
    try { localStorage.setItem(CHATS_KEY, JSON.stringify(this.list().filter((c) => c.id !== id))); } catch (e) { /* smaller than before: fits */ }
  },
};

// The conversation on screen: {id, title, model, system, messages}; unsaved until its first message.
let convo = null;
function newChatId() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 8); }

function rememberChat(id) { // which conversation a reload opens (nothing when storage is full)
  try { localStorage.setItem(CURRENT_KEY, id); } catch (e) { /* the conversation itself is not saved either */ }
}
function saveChat(chat) {
  if (chat.deleted) return; // a reply stopped by the deletion ends after it
  const ok = chatStore.save(chat);
  if (ok && chat === convo && chat.messages.length) rememberChat(chat.id);
  showChatList();
  if (!ok) showError(t("storage_full"));
}
function newChat() {
  stopReply();
  convo = { id: newChatId(), title: "", model: $("chat-model").value, system: $("chat-system").value, messages: [] };
  localStorage.removeItem(CURRENT_KEY);
  renderChat();
  showChatList();
}
function openChat(id) {
  if (convo && id === convo.id) return;
  const saved = chatStore.load(id);
  if (!saved) { newChat(); return; }
  stopReply();
  convo = saved;
  $("chat-system").value = saved.system || "";
  pickModel(saved.model);
  rememberChat(id);
  renderChat();
  showChatList();
}
function deleteChat(id) {
  chatStore.remove(id);
  if (convo && id === convo.id) { convo.deleted = true; newChat(); } else showChatList();
}

function showChatList() {
  const list = $("chat-list"), pick = $("chat-pick");
  const chats = chatStore.list();
  list.textContent = "";
  pick.textContent = "";
  const option = (value, text) => { const o = document.createElement("option"); o.value = value; o.textContent = text; pick.appendChild(o); };
  if (!chats.some((c) => c.id === convo.id)) option(convo.id, t("new_chat"));
  chats.forEach((c) => {
    option(c.id, c.title);
    const item = document.createElement("li");
    if (c.id === convo.id) item.setAttribute("aria-current", "true");
    const open = document.createElement("button");
    open.type = "button"; open.className = "chat-open"; open.textContent = open.title = c.title;
    open.addEventListener("click", () => run(async () => openChat(c.id)));
    const del = document.createElement("button");
    del.type = "button"; del.className = "chat-delete"; del.textContent = "×";
    del.title = `${t("delete_chat")}: ${c.title}`;
    del.setAttribute("aria-label", del.title);
    del.addEventListener("click", () => run(async () => deleteChat(c.id)));
    item.append(open, del);
    list.appendChild(item);
  });
  pick.value = convo.id;
  $("chat-none").hidden = chats.length > 0;
  $("chat-delete").disabled = !chats.some((c) => c.id === convo.id);
}
$("chat-new").addEventListener("click", () => run(async () => { newChat(); $("chat-input").focus(); }));
$("chat-pick").addEventListener("change", () => run(async () => openChat($("chat-pick").value)));
$("chat-delete").addEventListener("click", () => run(async () => deleteChat(convo.id)));
$("lang").addEventListener("click", () => showChatList()); // "New chat" in the select, the tooltips
