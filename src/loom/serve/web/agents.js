// The Agents tab: the agents defined on the server (/v1/agents), a form to define or edit one (chat
// model, instructions, tools from /v1/agents/tools, limits), and a "Try it" box that asks it through
// /v1/chat/completions (model "agent:NAME", streamed) and shows each tool call as it finishes.
// Uses app.js's helpers ($, api, run, t, fill, showError, streamSSE).
// Model and tool text reach the page only as textContent: a tool result can hold anything.
"use strict";

const STEP_RESULT_CHARS = 500; // a step's result is cut to this in the page (a search returns pages of text)
let agentAsking = null; // the AbortController while an answer streams
let defaultChatModel = null; // `loom models default NAME`: what a new agent starts with

async function loadAgentsPage() {
  const [agents, tools, models] = await Promise.all([api("/v1/agents"), api("/v1/agents/tools"), api("/v1/models")]);
  const chat = models.data.filter((m) => m.task === "generate" && !m.id.startsWith("support:") && !m.id.startsWith("agent:"));
  defaultChatModel = (chat.find((m) => m.default) || {}).id || null;
  fill($("agent-model"), chat);
  showToolChoices(tools.data);
  showAgents(agents.data);
}

function showAgents(agents) {
  const list = $("agents-list");
  list.textContent = "";
  $("agents-none").hidden = agents.length > 0;
  agents.forEach((a) => {
    const li = document.createElement("li");
    li.dataset.name = a.name;
    li.setAttribute("aria-current", String(a.name === $("agent-name").value.trim()));
    const open = document.createElement("button");
    open.type = "button"; open.className = "cite"; open.textContent = a.name;
    open.addEventListener("click", () => openAgent(a));
    const about = document.createElement("div");
    about.className = a.error ? "error-text" : "muted";
    about.textContent = a.error || `${a.model || "—"} · ${a.tools.join(", ") || "—"}`;
    li.append(open, about);
    list.appendChild(li);
  });
}

// One checkbox per tool an agent may list; the boxes ticked before a refresh stay ticked.
function showToolChoices(tools) {
  const box = $("agent-tool-list");
  const ticked = chosenTools();
  box.textContent = "";
  tools.forEach((tool) => addToolChoice(tool, ticked.includes(tool.name)));
}
function addToolChoice(tool, checked) {
  const label = document.createElement("label");
  label.className = "tool-choice";
  const input = document.createElement("input");
  input.type = "checkbox"; input.value = tool.name; input.checked = checked;
  const name = document.createElement("code");
  name.textContent = tool.name;
  const kind = document.createElement("span");
  kind.className = "kind"; kind.dataset.i18n = "kind_" + tool.kind.replace("-", ""); kind.textContent = t(kind.dataset.i18n);
  const about = document.createElement("span");
  about.className = "muted about"; about.textContent = tool.description;
  label.append(input, " ", name, " ", kind, about);
  $("agent-tool-list").appendChild(label);
}
function chosenTools() { return [...$("agent-tool-list").querySelectorAll("input:checked")].map((i) => i.value); }

function openAgent(a) {
  $("agent-name").value = a.name;
  if (a.error) { $("agent-status").textContent = a.error; return; } // a broken definition: its name, to fix or delete it
  const model = $("agent-model");
  if (a.model && ![...model.options].some((o) => o.value === a.model)) { // a model this list does not offer: kept as it is
    const o = document.createElement("option"); o.value = o.textContent = a.model; model.appendChild(o);
  }
  if (a.model) model.value = a.model;
  $("agent-instructions").value = a.instructions;
  const listed = [...$("agent-tool-list").querySelectorAll("input")].map((i) => i.value);
  a.tools.filter((name) => !listed.includes(name)).forEach((name) => addToolChoice({ name, kind: "mcp", description: "" }, true));
  $("agent-tool-list").querySelectorAll("input").forEach((i) => { i.checked = a.tools.includes(i.value); });
  $("agent-first-step").value = a.first_step;
  $("agent-max-steps").value = a.max_steps;
  $("agent-max-tokens").value = a.max_tokens;
  $("agent-max-seconds").value = a.max_seconds;
  $("agent-status").textContent = "";
  markCurrent();
}
function markCurrent() {
  const name = $("agent-name").value.trim();
  $("agents-list").querySelectorAll("li").forEach((li) => li.setAttribute("aria-current", String(li.dataset.name === name)));
}
function clearForm() {
  const model = $("agent-model").value;
  $("agent-form").reset(); // back to the defaults written in the page
  $("agent-tool-list").querySelectorAll("input").forEach((i) => { i.checked = false; });
  $("agent-model").value = defaultChatModel || model;
  $("agent-status").textContent = "";
  markCurrent();
}

function agentName() {
  const name = $("agent-name").value.trim();
  if (!name) throw new Error(t("agent_need_name"));
  return name;
}
function agentBody() {
  return { model: $("agent-model").value || null, instructions: $("agent-instructions").value, tools: chosenTools(),
           first_step: $("agent-first-step").value, max_steps: Number($("agent-max-steps").value),
           max_tokens: Number($("agent-max-tokens").value), max_seconds: Number($("agent-max-seconds").value) };
}

$("agent-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(async () => {
    const name = agentName();
    await api(`/v1/agents/${encodeURIComponent(name)}`, agentBody(), "PUT");
    $("agent-status").textContent = t("agent_saved").replace("{name}", "agent:" + name);
    showAgents((await api("/v1/agents")).data);
  });
});
$("agent-delete").addEventListener("click", () => run(async () => {
  const name = agentName();
  await api(`/v1/agents/${encodeURIComponent(name)}`, null, "DELETE");
  clearForm();
  $("agent-status").textContent = t("agent_deleted").replace("{name}", name);
  showAgents((await api("/v1/agents")).data);
}));
$("agent-new").addEventListener("click", clearForm);
$("agent-name").addEventListener("input", markCurrent);

// ---- Try it: one question, streamed; steps arrive as empty chunks carrying choices[0].loom.step ----
function stepItem(step) {
  const li = document.createElement("li");
  li.className = "agent-step" + (step.error ? " failed" : "");
  const head = document.createElement("div");
  head.className = "step-head";
  const tool = document.createElement("span");
  tool.className = "tool-name"; tool.textContent = step.tool;
  const took = document.createElement("span");
  took.className = "muted"; took.textContent = `${Number(step.seconds).toFixed(2)} s`;
  head.append(tool, " ", took);
  if (step.error) {
    const flag = document.createElement("span");
    flag.className = "flag"; flag.dataset.i18n = "agent_step_error"; flag.textContent = t("agent_step_error");
    head.append(" ", flag);
  }
  const args = document.createElement("pre");
  args.className = "tool-args";
  args.textContent = typeof step.arguments === "string" ? step.arguments : JSON.stringify(step.arguments, null, 2);
  li.append(head, args, resultBox(String(step.result), step.error));
  return li;
}
function resultBox(result, open) { // folded away unless it is an error: the error is what the reader wants to see
  const details = document.createElement("details");
  details.open = open;
  const summary = document.createElement("summary");
  const label = document.createElement("span");
  label.dataset.i18n = "agent_result"; label.textContent = t("agent_result");
  summary.append(label, ` (${result.length})`);
  const body = document.createElement("pre");
  body.textContent = result.length > STEP_RESULT_CHARS ? result.slice(0, STEP_RESULT_CHARS) + " …" : result;
  details.append(summary, body);
  return details;
}
function stoppedText(stopped) {
  const key = "agent_stopped_" + stopped;
  return t(key) === key ? stopped : t(key);
}

async function askAgent(name, question) {
  const steps = $("agent-steps"), answer = $("agent-answer");
  steps.textContent = ""; answer.textContent = ""; $("agent-meta").textContent = t("agent_working");
  const mine = agentAsking = new AbortController();
  $("agent-ask").disabled = true; $("agent-stop").disabled = false;
  let count = 0, stopped = "", failed = true;
  try {
    await streamSSE("/v1/chat/completions", { model: "agent:" + name, stream: true, messages: [{ role: "user", content: question }] }, (ev) => {
      const choice = ev.choices && ev.choices[0];
      if (!choice) return;
      const extra = choice.loom || {};
      if (extra.step) { steps.appendChild(stepItem(extra.step)); count += 1; }
      if (choice.delta && choice.delta.content) answer.textContent += choice.delta.content;
      if (extra.steps) stopped = extra.stopped || "";
    }, mine.signal);
    failed = false;
  } catch (err) {
    if (err.name !== "AbortError") throw err;
    failed = false; // stopped by the reader: what came stays
  } finally {
    agentAsking = null;
    $("agent-ask").disabled = false; $("agent-stop").disabled = true;
    $("agent-meta").textContent = failed ? "" : t("agent_steps_n").replace("{n}", count) + (stopped ? " · " + stoppedText(stopped) : "");
  }
}
$("agent-try-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (agentAsking) return;
  run(async () => {
    const name = agentName();
    const question = $("agent-question").value.trim();
    if (!question) throw new Error(t("empty"));
    await askAgent(name, question);
  });
});
$("agent-stop").addEventListener("click", () => { if (agentAsking) agentAsking.abort(); });

document.querySelector("[data-tab=agents]").addEventListener("click", () => run(loadAgentsPage));
$("api-key").addEventListener("change", () => { if (!$("agents").hidden) run(loadAgentsPage); }); // another key may see other agents
if (location.hash === "#agents") run(loadAgentsPage);
