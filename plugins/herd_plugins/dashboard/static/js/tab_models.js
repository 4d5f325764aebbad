// Model Insights: per-model usage and speed, where each model is, and pulling one onto a node.
import { barList } from "./charts.js";
import { live, subscribe } from "./live.js";
import { ago, api, esc, failed, ms, num, toast } from "./util.js";

let root = null;
let rows = [];
let hours = 168;

function holders(model) {
  const fleet = live.fleet;
  if (!fleet) return { loaded: [] };
  const loaded = fleet.nodes.filter((n) => n.loaded.some((m) => sameModel(m.name, model))).map((n) => n.name);
  return { loaded };
}

function sameModel(name, key) {
  const norm = (s) => (s.includes(":") ? s : `${s}:latest`).toLowerCase();
  return norm(name) === norm(key);
}

function renderTable() {
  const body = rows.map((r) => {
    const where = holders(r.model);
    return `<tr data-model="${esc(r.model)}"><td><b>${esc(r.model)}</b></td>
      <td class="num">${num(r.requests)}</td><td class="num">${ms(r.p50_latency_ms)}</td>
      <td class="num">${ms(r.p95_latency_ms)}</td><td class="num">${ms(r.p50_ttft_ms)}</td>
      <td class="num">${num(r.tokens_per_second, 1)}</td>
      <td class="num">${num(r.cold_loads)}${r.avg_cold_load_ms ? ` <span class="muted small">(${ms(r.avg_cold_load_ms)})</span>` : ""}</td>
      <td>${where.loaded.map((n) => `<span class="pill online">${esc(n)}</span>`).join(" ") || '<span class="muted">not loaded</span>'}</td>
      <td>${(r.nodes || []).map(esc).join(", ")}</td><td>${ago(r.last_seen)}</td></tr>`;
  }).join("");
  root.querySelector("tbody").innerHTML = body ||
    '<tr><td colspan="10" class="empty">No requests in this window yet.</td></tr>';
}

function renderPullForm() {
  const fleet = live.fleet;
  const select = root.querySelector("select[name=node]");
  if (!fleet || select.dataset.filled === String(fleet.nodes.length)) return;
  select.innerHTML = fleet.nodes.map((n) => `<option>${esc(n.name)}</option>`).join("");
  select.dataset.filled = String(fleet.nodes.length);
}

async function load() {
  try {
    rows = await api(`/dashboard/api/models?hours=${hours}`);
    renderTable();
    barList(root.querySelector(".chart-requests"), rows.map((r) => ({ label: r.model, value: r.requests })),
      { title: "Requests", format: (v) => num(v) });
    barList(root.querySelector(".chart-speed"),
      rows.filter((r) => r.tokens_per_second).map((r) => ({ label: r.model, value: r.tokens_per_second })),
      { title: "Tokens/s", format: (v) => num(v, 1) });
    barList(root.querySelector(".chart-latency"),
      rows.filter((r) => r.p95_latency_ms).map((r) => ({ label: r.model, value: r.p95_latency_ms })),
      { title: "Latency p95", format: ms });
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

async function pull(event) {
  event.preventDefault();
  const form = event.target;
  const model = form.model.value.trim();
  if (!model) return;
  try {
    await api(`/dashboard/api/nodes/${encodeURIComponent(form.node.value)}/pull`,
      { method: "POST", body: { model }, admin: true });
    toast(`Pulling ${model} onto ${form.node.value}: the overview shows when it lands`);
  } catch (error) {
    failed(error);
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<div class="row" style="margin-bottom:14px">
        <div class="seg"><button data-hours="24" aria-pressed="false">Last day</button>
        <button data-hours="168" aria-pressed="true">Last week</button></div></div>
      <div class="grid wide"><div class="panel chart-requests"></div><div class="panel chart-speed"></div>
        <div class="panel chart-latency"></div>
        <form class="panel pull"><h3>Pull a model onto a node</h3><div class="row">
          <input name="model" placeholder="e.g. llama3.2:3b" aria-label="model">
          <select name="node" aria-label="node"></select><button class="primary">Pull</button></div>
          <p class="muted small">Needs the admin key when one is configured.</p></form></div>
      <div class="panel"><table><thead><tr><th>model</th><th class="num">requests</th>
        <th class="num">p50 latency</th><th class="num">p95 latency</th><th class="num">p50 TTFT</th>
        <th class="num">tokens/s</th><th class="num">cold loads</th><th>loaded on</th><th>served by</th>
        <th>last used</th></tr></thead><tbody></tbody></table></div>`;
    el.querySelector("form.pull").addEventListener("submit", pull);
    el.querySelector(".seg").addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      hours = Number(button.dataset.hours);
      for (const b of button.parentElement.children) b.setAttribute("aria-pressed", String(b === button));
      load();
    });
    subscribe(() => { if (!el.hidden) { renderPullForm(); renderTable(); } });
  },
  show() {
    renderPullForm();
    load();
  },
};
