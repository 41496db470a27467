// A small Markdown renderer written for Loom's chat replies (no library): fenced code blocks (with a
// Copy button), inline code, headings, bold / italic / struck text, lists (nested by indentation),
// block quotes, tables, rules, http(s) links and paragraphs. Safety: every piece of model text is
// HTML-escaped before any tag is added, so a reply's own HTML (<img onerror=...>, <script>) shows as
// text; links are made only for http:// and https:// URLs. window.loomMarkdown(text) returns the HTML.
"use strict";

function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// Inline markup of one line (or a paragraph's lines): code spans and links are set aside first, so
// that their insides are neither emphasis nor links again, then put back at the end.
function mdInline(text) {
  const kept = [];
  const keep = (html) => `\u0000${kept.push(html) - 1}\u0000`;
  const link = (url, label) => keep(`<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`);
  let s = escapeHTML(String(text).replace(/\u0000/g, ""));
  s = s.replace(/(`{1,2})(?!`)(.+?)\1(?!`)/g, (_, ticks, code) => keep(`<code>${code}</code>`));
  s = s.replace(/\[([^\]]+)\]\((https?:\/\/(?:[^\s()]|\([^\s()]*\))+)\)/g, (_, label, url) => link(url, emphasis(label)));
  s = s.replace(/\[([^\]]+)\]\((?:[^\s()]|\([^\s()]*\))*\)/g, "$1"); // any other target (javascript:, data:, relative): the label only
  s = s.replace(/https?:\/\/(?:(?!&lt;|&gt;|&quot;|&#39;)[^\s\u0000])+/g, (url) => {
    const tail = /[.,;:!?)\]]+$/.exec(url); // sentence punctuation after a bare URL is not part of it
    return tail ? link(url.slice(0, -tail[0].length), url.slice(0, -tail[0].length)) + tail[0] : link(url, url);
  });
  return emphasis(s).replace(/\u0000(\d+)\u0000/g, (_, i) => kept[Number(i)]);
}
function emphasis(s) {
  return s.replace(/\*\*(?=\S)([^]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([^]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/\*(?=[^\s*])([^*]*?[^\s*])\*/g, "<em>$1</em>")
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([^]*?\S)~~/g, "<del>$1</del>");
}

function codeBlock(code, lang) {
  const label = escapeHTML(lang);
  return `<div class="code-block"><div class="code-head"><span>${label}</span>` +
    `<button type="button" class="copy-code" data-i18n="copy">${escapeHTML(t("copy"))}</button></div>` +
    `<pre><code${lang ? ` class="language-${label}"` : ""}>${escapeHTML(code)}</code></pre></div>`;
}

const MD_ITEM = /^( *)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
const MD_RULE = /^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$/;
const MD_TABLE_RULE = /^ *\|? *:?-+:? *(\| *:?-+:? *)*\|? *$/;
const leading = (line) => /^ */.exec(line)[0].length;

// A list from lines[i]: its items are the lines with a marker at about its indentation; the lines
// indented under an item (text, a nested list, code) are rendered as that item's own blocks.
function mdList(lines, i, out) {
  const first = MD_ITEM.exec(lines[i]);
  const indent = first[1].length, ordered = /\d/.test(first[2]);
  const items = [];
  while (i < lines.length) {
    const m = MD_ITEM.exec(lines[i]);
    if (m && m[1].length <= indent + 1) {
      if (/\d/.test(m[2]) !== ordered) break; // a list of the other kind starts here
      items.push({ text: m[3], rest: [], width: m[1].length + m[2].length + 1 });
      i++;
    } else if (!lines[i].trim()) { // a blank line: the list goes on if an item or an indented line follows
      let j = i;
      while (j < lines.length && !lines[j].trim()) j++;
      if (j === lines.length || leading(lines[j]) <= indent && !(MD_ITEM.test(lines[j]) && /\d/.test(MD_ITEM.exec(lines[j])[2]) === ordered)) break;
      items[items.length - 1].rest.push("");
      i = j;
    } else if (leading(lines[i]) > indent) {
      const item = items[items.length - 1];
      item.rest.push(lines[i].slice(Math.min(leading(lines[i]), item.width)));
      i++;
    } else break;
  }
  const start = ordered ? parseInt(first[2], 10) : 1;
  const tag = ordered ? "ol" : "ul";
  out.push(`<${tag}${start !== 1 ? ` start="${start}"` : ""}>` +
    items.map((it) => `<li>${mdInline(it.text)}${it.rest.length ? mdBlocks(it.rest) : ""}</li>`).join("") + `</${tag}>`);
  return i;
}

function mdCells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
}
function mdTable(lines, i, out) {
  const head = mdCells(lines[i]);
  const align = mdCells(lines[i + 1]).map((c) => (c.endsWith(":") ? (c.startsWith(":") ? "center" : "right") : ""));
  const cell = (tag, text, k) => `<${tag}${align[k] ? ` style="text-align:${align[k]}"` : ""}>${mdInline(text)}</${tag}>`;
  const rows = [];
  for (i += 2; i < lines.length && lines[i].includes("|") && lines[i].trim(); i++) rows.push(mdCells(lines[i]));
  out.push(`<div class="table-wrap"><table><thead><tr>${head.map((h, k) => cell("th", h, k)).join("")}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${head.map((_, k) => cell("td", r[k] || "", k)).join("")}</tr>`).join("") + "</tbody></table></div>");
  return i;
}

function mdBlocks(lines) {
  const out = [];
  let para = [];
  const flush = () => { if (para.length) out.push(`<p>${para.map(mdInline).join("<br>")}</p>`); para = []; };
  for (let i = 0; i < lines.length;) {
    const line = lines[i];
    let m;
    if ((m = /^ {0,3}(`{3,}|~{3,})[ \t]*([\w+#.-]*)/.exec(line))) { // to its closing fence, or the end (a reply still coming)
      flush();
      const close = new RegExp(`^ {0,3}${m[1][0]}{${m[1].length},}[ \\t]*$`);
      const body = [];
      for (i++; i < lines.length && !close.test(lines[i]); i++) body.push(lines[i]);
      out.push(codeBlock(body.join("\n"), m[2]));
      i++;
    } else if (!line.trim()) { flush(); i++; }
    else if ((m = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(line))) {
      flush();
      out.push(`<h${m[1].length}>${mdInline(m[2])}</h${m[1].length}>`);
      i++;
    } else if (MD_RULE.test(line)) { flush(); out.push("<hr>"); i++; }
    else if (/^ {0,3}>/.test(line)) {
      flush();
      const quoted = [];
      for (; i < lines.length && /^ {0,3}>/.test(lines[i]); i++) quoted.push(lines[i].replace(/^ {0,3}> ?/, ""));
      out.push(`<blockquote>${mdBlocks(quoted)}</blockquote>`);
    } else if (MD_ITEM.test(line)) { flush(); i = mdList(lines, i, out); }
    else if (line.includes("|") && i + 1 < lines.length && lines[i + 1].includes("-") && MD_TABLE_RULE.test(lines[i + 1]) &&
             (line.trim().startsWith("|") || lines[i + 1].includes("|"))) { flush(); i = mdTable(lines, i, out); }
    else { para.push(line.trim()); i++; }
  }
  flush();
  return out.join("");
}

function renderMarkdown(text) {
  return mdBlocks(String(text || "").replace(/\r\n?/g, "\n").split("\n"));
}
window.loomMarkdown = renderMarkdown;

// Copy buttons on code blocks, wherever they were rendered.
document.addEventListener("click", (e) => {
  const button = e.target.closest && e.target.closest("button.copy-code");
  if (button) copyText(button.closest(".code-block").querySelector("code").textContent, button);
});
