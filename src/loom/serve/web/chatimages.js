// The chat's images: dropped on the message box, pasted, or picked (📎), shown as chips until sent,
// as thumbnails in the transcript, and the note under a reply when the model read them by OCR.
// Uses app.js's helpers ($, run, t) and chat.js's transcript.
"use strict";

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
// Returns the note's text (kept with the reply), or "" when there is none.
function ocrNote(msg, extra, newest) {
  const read = (extra.images || []).filter((i) => i.handled === "ocr" && i.message === newest);
  if (!read.length) return "";
  const characters = read.reduce((n, i) => n + (i.characters || 0), 0);
  const text = characters ? t("ocr_note").replace("{n}", characters) : t("ocr_none");
  showNote(msg, text, extra.note);
  return text;
}
function showNote(msg, text, title) {
  const note = document.createElement("div");
  note.className = "muted ocr-note";
  note.textContent = text;
  if (title) note.title = title;
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
