// The Recommend tab: pick a trained recommender, then a user (or type a few liked items, or a text)
// and see the top k with the items that drove each one (/v1/recommend, /v1/recommend/similar,
// /v1/recommenders). Uses app.js's helpers ($, api, run, t, showError).
"use strict";

async function loadRecommenders() {
  const list = (await api("/v1/recommenders")).data;
  const select = $("rec-name");
  const keep = select.value;
  select.innerHTML = "";
  list.forEach((r) => { const o = document.createElement("option"); o.value = o.textContent = r.name; select.appendChild(o); });
  if (list.some((r) => r.name === keep)) select.value = keep;
  $("rec-route").textContent = list.length ? "" : t("rec_none");
  if (list.length) await loadPickers();
}

async function loadPickers() { // suggestions for the user and item fields: the most active users, the most popular items
  const name = $("rec-name").value;
  if (!name) return;
  const q = $("rec-items").value.split(",").pop().trim();
  const cat = await api(`/v1/recommenders/${encodeURIComponent(name)}?limit=50&q=${encodeURIComponent(q)}`);
  const users = $("rec-users"), items = $("rec-item-list");
  users.innerHTML = ""; items.innerHTML = "";
  cat.users.forEach((u) => { const o = document.createElement("option"); o.value = u.user; users.appendChild(o); });
  cat.items.forEach((i) => { const o = document.createElement("option"); o.value = i.item; o.label = i.title; items.appendChild(o); });
  $("rec-similar-form").hidden = !cat.has_texts;
}

function reasonText(reason) {
  if (reason.popular !== undefined) return `${t("rec_popular")} ${reason.popular} ${t("rec_users")}`;
  return `${t("rec_liked")} ${reason.title}`;
}

function showRecommendations(answer, route) {
  $("rec-route").textContent = t("route_" + route);
  const table = $("rec-results");
  table.innerHTML = `<tr><th>#</th><th>${t("rec_title")}</th><th>${t("rec_score")}</th><th>${t("rec_why")}</th></tr>`;
  answer.results.forEach((r, i) => {
    const row = table.insertRow();
    [String(i + 1), r.title, r.score.toFixed(3), (r.reasons || []).map(reasonText).join("; ")]
      .forEach((v) => { row.insertCell().textContent = v; });
  });
}

$("rec-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(async () => {
    const user = $("rec-user").value.trim();
    const items = $("rec-items").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (!user && !items.length) throw new Error(t("need_user"));
    const body = { model: $("rec-name").value, k: Number($("rec-k").value) || 10 };
    if (user) body.user = user; else body.items = items;
    const answer = await api("/v1/recommend", body);
    showRecommendations(answer, answer.route);
  });
});

$("rec-similar-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(async () => {
    const text = $("rec-text").value.trim();
    if (!text) throw new Error(t("empty"));
    const answer = await api("/v1/recommend/similar", { model: $("rec-name").value, text, k: Number($("rec-k").value) || 10 });
    showRecommendations(answer, "text");
  });
});

$("rec-name").addEventListener("change", () => run(loadPickers));
$("rec-items").addEventListener("input", () => run(loadPickers));
document.querySelector("[data-tab=recommend]").addEventListener("click", () => run(loadRecommenders));
if (location.hash === "#recommend") run(loadRecommenders);
