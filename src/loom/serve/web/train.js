// The Train tab: start a fine-tune (POST /v1/train/jobs, multipart), watch its loss curve
// (/v1/runs/NAME/metrics) and log, stop it, evaluate it, then chat with the result.
// Uses app.js's helpers ($, api, run, t, headers, showError, drawChart, selectTab, loadModels, MODELS).
"use strict";

let trainTimer = null;
const CLASSIFIER_BASES = ["tfidf", "minilm", "e5"];

function fillTrainBases() {
  const kind = $("train-kind").value;
  const chat = MODELS.filter((m) => m.task === "generate" && !m.id.startsWith("support:") && m.backend !== "openai");
  const bases = kind === "sft" ? chat.map((m) => m.id) : CLASSIFIER_BASES.concat(chat.map((m) => m.id));
  const select = $("train-base");
  const keep = select.value;
  select.innerHTML = "";
  bases.forEach((id) => { const o = document.createElement("option"); o.value = o.textContent = id; select.appendChild(o); });
  const preset = chat.find((m) => m.default); // the default chat model (`loom models default`) for a chat fine-tune
  if (bases.includes(keep)) select.value = keep;
  else if (kind === "sft" && preset) select.value = preset.id;
}
$("train-kind").addEventListener("change", fillTrainBases);

async function loadJobs() {
  const jobs = (await api("/v1/train/jobs")).data;
  const table = $("train-jobs");
  table.innerHTML = `<tr><th>${t("run_name")}</th><th>${t("kind")}</th><th>${t("status")}</th></tr>`;
  jobs.forEach((j) => {
    const row = table.insertRow();
    const b = document.createElement("button");
    b.textContent = j.name; b.className = "cite"; b.type = "button";
    b.addEventListener("click", () => run(() => watchJob(j.name)));
    row.insertCell().appendChild(b);
    row.insertCell().textContent = j.kind;
    row.insertCell().textContent = stateText(j.status);
  });
}

function stateText(status) {
  return { running: t("running"), finished: t("finished"), stopped: t("stopped"), failed: t("failed_job") }[status] || status;
}

async function watchJob(name) {
  clearTimeout(trainTimer);
  const job = await api(`/v1/train/jobs/${encodeURIComponent(name)}`);
  $("train-job").hidden = false;
  $("train-title").textContent = `${job.name} (${job.kind})`;
  $("train-state").textContent = stateText(job.status);
  $("train-state").dataset.status = job.status;
  $("train-log").textContent = job.log;
  $("train-stop").hidden = job.status !== "running";
  $("train-eval").hidden = !(job.kind === "sft" && job.status === "finished");
  $("train-chat").hidden = !(job.kind === "sft" && job.status === "finished");
  const metrics = await fetch(`/v1/runs/${encodeURIComponent(name)}/metrics`, { headers: headers() });
  if (metrics.ok) {
    const m = await metrics.json();
    drawChart(m.train, m.val, "train-chart");
    const last = m.train.length ? m.train[m.train.length - 1] : null;
    const val = m.val.length ? m.val[m.val.length - 1] : null;
    $("train-caption").textContent = `${t("train_loss")} ${last ? last.loss.toFixed(4) + " @ " + last.step : "-"}` +
      ` · ${t("val_loss")} ${val ? val.loss.toFixed(4) + " @ " + val.step : "-"}`;
  }
  const r = job.result;
  if (r) {
    $("train-result").textContent = job.kind === "classify"
      ? `accuracy ${Number(r.accuracy).toFixed(4)} · macro F1 ${Number(r.macro_f1).toFixed(4)} (${r.evaluated_on})`
      : `${r.method} · ${r.steps} ${t("steps")} · ${t("train_loss")} ${r.last && r.last.loss != null ? r.last.loss.toFixed(4) : "-"}` +
        ` · ${t("val_loss")} ${r.last && r.last.val_loss != null ? r.last.val_loss.toFixed(4) : "-"}`;
  } else {
    $("train-result").textContent = "";
  }
  if (job.status === "running") {
    trainTimer = setTimeout(() => run(() => watchJob(name)), 2000);
  } else {
    await loadJobs();
    if (job.status === "finished") await loadModels();
  }
}

$("train-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(async () => {
    const file = $("train-data").files[0];
    const name = $("train-name").value.trim();
    if (!name) { showError(t("empty")); return; }
    if (!file) { showError(t("no_file")); return; }
    const form = new FormData();
    form.append("kind", $("train-kind").value);
    form.append("name", name);
    form.append("base", $("train-base").value);
    form.append("data", file);
    if ($("train-epochs").value) form.append("epochs", $("train-epochs").value);
    if ($("train-steps").value && $("train-kind").value === "sft") form.append("max_steps", $("train-steps").value);
    if ($("train-lr").value.trim()) form.append("lr", $("train-lr").value.trim());
    form.append("lora", $("train-lora").checked ? "true" : "false");
    const h = headers();
    delete h["Content-Type"]; // the browser sets the multipart boundary
    const res = await fetch("/v1/train/jobs", { method: "POST", headers: h, body: form });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data.error && data.error.message) || res.status + " " + res.statusText);
    $("train-result").textContent = "";
    await loadJobs();
    await watchJob(data.name);
  });
});

$("train-stop").addEventListener("click", () => run(async () => {
  const name = $("train-title").textContent.split(" ")[0];
  await api(`/v1/train/jobs/${encodeURIComponent(name)}/stop`, {});
  await watchJob(name);
}));

$("train-eval").addEventListener("click", () => run(async () => {
  const name = $("train-title").textContent.split(" ")[0];
  $("train-result").textContent = "…";
  const ev = await api(`/v1/train/jobs/${encodeURIComponent(name)}/eval`, {});
  const lines = ev.results.map((r) => `${r.contains ? "✓" : "✗"} ${r.prompt.slice(0, 60)} → ${r.answer.slice(0, 60)}`);
  $("train-result").textContent = `${(100 * ev.contains).toFixed(1)}% ${t("held_out")} (${ev.examples})\n` + lines.join("\n");
}));

$("train-chat").addEventListener("click", () => run(async () => {
  const name = $("train-title").textContent.split(" ")[0];
  await loadModels();
  $("chat-model").value = name;
  selectTab("chat");
  $("chat-input").focus();
}));

document.querySelector("[data-tab=train]").addEventListener("click", () => run(async () => {
  if (!MODELS.length) await loadModels();
  fillTrainBases();
  await loadJobs();
}));
if (location.hash === "#train") run(async () => { await loadModels(); fillTrainBases(); await loadJobs(); });
