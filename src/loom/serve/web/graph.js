// The Graph tab: build a knowledge base's graph, find an entity, see its neighbourhood drawn (a small
// radial layout written here: the entity in the middle, each hop on a ring further out), click a
// node to move there, click a relation or a fact to read the sentence and document it came from.
// Calls /v1/kg only. Uses app.js's helpers ($, api, run, t).
"use strict";

const SVG = "http://www.w3.org/2000/svg";

async function loadGraphs() {
  const [graphs, kbs] = await Promise.all([api("/v1/kg"), api("/v1/kb")]);
  const names = graphs.data.map((g) => g.name);
  const select = $("kg-name");
  const keep = select.value;
  select.innerHTML = "";
  names.forEach((n) => { const o = document.createElement("option"); o.value = o.textContent = n; select.appendChild(o); });
  if (names.includes(keep)) select.value = keep;
  const kbSelect = $("kg-kb");
  kbSelect.innerHTML = "";
  (kbs.data || []).forEach((k) => { const o = document.createElement("option"); o.value = o.textContent = k.name; kbSelect.appendChild(o); });
  const current = graphs.data.find((g) => g.name === select.value);
  $("kg-status").textContent = current ? `${current.entities} ${t("kg_entities")}, ${current.relations} ${t("kg_relations")}` : t("kg_none");
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  parent.appendChild(node);
  return node;
}

function layout(result) { // radial: ring r = 150 * distance / max distance, nodes spread evenly on their ring
  const rings = {};
  result.nodes.forEach((n) => { (rings[n.distance] = rings[n.distance] || []).push(n); });
  const deepest = Math.max(1, ...Object.keys(rings).map(Number));
  const at = {};
  Object.entries(rings).forEach(([d, nodes]) => {
    const radius = (Number(d) / deepest) * 190;
    nodes.forEach((n, i) => {
      const angle = (2 * Math.PI * i) / nodes.length + Number(d) * 0.5;
      at[n.id] = { x: radius * Math.cos(angle), y: radius * 0.95 * Math.sin(angle) };
    });
  });
  return at;
}

async function showEntity(name) {
  const graph = $("kg-name").value;
  const hops = $("kg-hops").value;
  const result = await api(`/v1/kg/${encodeURIComponent(graph)}/neighbors?entity=${encodeURIComponent(name)}&hops=${hops}`);
  const view = $("kg-view");
  view.innerHTML = "";
  const at = layout(result);
  result.edges.forEach((e) => {
    const a = at[e.source_id], b = at[e.target_id];
    const g = el("g", { class: "edge" }, view);
    el("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y }, g);
    const label = el("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 3, tabindex: 0 }, g);
    label.textContent = e.label;
    label.addEventListener("click", () => run(() => showFacts(e.subject, e.object)));
  });
  result.nodes.forEach((n) => {
    const g = el("g", { class: "node" + (n.id === result.center.id ? " center" : ""), tabindex: 0, "data-name": n.name }, view);
    el("circle", { cx: at[n.id].x, cy: at[n.id].y, r: 9 }, g);
    const text = el("text", { x: at[n.id].x, y: at[n.id].y - 13 }, g);
    text.textContent = n.name;
    g.addEventListener("click", () => run(() => showEntity(n.name)));
  });
  await showFacts(result.center.name);
}

async function showFacts(name, other) { // the facts of an entity (or only those with `other`) and their sources
  const graph = $("kg-name").value;
  const info = await api(`/v1/kg/${encodeURIComponent(graph)}/entities/${encodeURIComponent(name)}`);
  $("kg-title").textContent = `${info.name} (${info.type})` + (info.aliases.length > 1 ? ` = ${info.aliases.join(" = ")}` : "");
  const list = $("kg-facts");
  list.innerHTML = "";
  info.facts.filter((f) => !other || f.subject === other || f.object === other).forEach((f) => {
    const li = document.createElement("li");
    li.textContent = `${f.subject} —${f.label}→ ${f.object}`;
    f.sources.forEach((s) => {
      const p = document.createElement("div");
      p.className = "muted";
      p.textContent = `${t("kg_source")}: ${s.source} — “${s.sentence}”`;
      li.appendChild(p);
    });
    list.appendChild(li);
  });
}

$("kg-search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(async () => {
    const q = $("kg-query").value.trim();
    if (!q) throw new Error(t("empty"));
    const hits = (await api(`/v1/kg/${encodeURIComponent($("kg-name").value)}/search?q=${encodeURIComponent(q)}`)).data;
    const list = $("kg-hits");
    list.innerHTML = "";
    hits.forEach((h) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button"; b.className = "cite"; b.textContent = `${h.name} (${h.relations})`;
      b.addEventListener("click", () => run(() => showEntity(h.name)));
      li.appendChild(b);
      list.appendChild(li);
    });
    if (hits.length) await showEntity(hits[0].name);
    else $("kg-status").textContent = t("no_hits");
  });
});

$("kg-build").addEventListener("click", () => run(async () => {
  const kb = $("kg-kb").value;
  if (!kb) throw new Error(t("kg_none"));
  await api(`/v1/kg/${encodeURIComponent(kb)}/build`, {});
  await loadGraphs();
  $("kg-name").value = kb;
  await loadGraphs();
}));
$("kg-name").addEventListener("change", () => run(loadGraphs));
document.querySelector("[data-tab=graph]").addEventListener("click", () => run(loadGraphs));
if (location.hash === "#graph") run(loadGraphs);
