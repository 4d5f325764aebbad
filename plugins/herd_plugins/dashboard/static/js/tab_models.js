// Model Insights: per-model usage and speed; where each model is; pulling one onto a node
// with a live progress bar; deleting or unloading one, each after a confirmation.
import { barList } from "./charts.js";
import { live, subscribe } from "./live.js";
import { ago, api, confirmAction, count, esc, failed, ms, num, paint, size, toast, tps } from "./util.js";

let root = null;
let rows = [];
let hours = 168;

function sameModel(name, key) {
  const norm = (s) => (s.includes(":") ? s : `${s}:latest`).toLowerCase();
  return norm(name) === norm(key);
}

function renderTable() {
  const fleet = live.fleet;
  const body = rows.map((r) => {
    const loaded = fleet ? fleet.nodes.filter((n) => n.loaded.some((m) => sameModel(m.name, r.model))).map((n) => n.name) : [];
    return `<tr data-model="${esc(r.model)}"><td><b>${esc(r.model)}</b></td>
      <td class="num">${num(r.requests)}</td><td class="num">${ms(r.p50_latency_ms)}</td>
      <td class="num">${ms(r.p95_latency_ms)}</td><td class="num">${ms(r.p50_ttft_ms)}</td>
      <td class="num">${tps(r.tokens_per_second)}</td>
      <td class="num">${num(r.cold_loads)}${r.avg_cold_load_ms ? ` <span class="muted small">(${ms(r.avg_cold_load_ms)})</span>` : ""}</td>
      <td>${loaded.map((n) => `<span class="pill online">${esc(n)}</span>`).join(" ") || '<span class="muted">not loaded</span>'}</td>
      <td>${(r.nodes || []).map(esc).join(", ")}</td><td>${ago(r.last_seen)}</td></tr>`;
  }).join("");
  root.querySelector(".usage tbody").innerHTML = body ||
    '<tr><td colspan="10" class="empty">No requests in this window yet.</td></tr>';
}

// Every model on every node, with the actions that apply to it there.
function renderPlaces() {
  const fleet = live.fleet;
  if (!fleet) return;
  const select = root.querySelector("select[name=node]");
  const names = fleet.nodes.map((n) => n.name).join(",");
  if (select.dataset.filled !== names) {
    const chosen = select.value;
    select.innerHTML = fleet.nodes.map((n) => `<option${n.name === chosen ? " selected" : ""}>${esc(n.name)}</option>`).join("");
    select.dataset.filled = names;
  }
  const places = [];
  for (const m of fleet.models || []) {
    for (const node of new Set([...m.on, ...m.loaded])) places.push({ ...m, node, isLoaded: m.loaded.includes(node), onDisk: m.on.includes(node) });
  }
  places.sort((a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name));
  root.querySelector(".places tbody").innerHTML = places.length ? places.map((p) =>
    `<tr data-node="${esc(p.node)}" data-model="${esc(p.name)}"><td>${esc(p.node)}</td><td><b>${esc(p.name)}</b></td>
      <td><span class="badge ${p.workload}">[${p.workload === "embed" ? "EMBED" : "TEXT"}]</span></td>
      <td class="num">${size(p.size)}</td><td>${p.isLoaded ? '<span class="pill online">loaded</span>' : '<span class="muted">on disk</span>'}</td>
      <td>${p.isLoaded ? `<button class="small" data-act="unload">Unload</button>` : ""}
        ${p.onDisk ? `<button class="small" data-act="delete">Delete</button>` : ""}</td></tr>`).join("")
    : '<tr><td colspan="6" class="empty">No node reports a model.</td></tr>';
  renderPulls(fleet.pulls || []);
}

function renderPulls(pulls) {
  const box = root.querySelector(".pulls");
  box.innerHTML = pulls.map((p) => {
    const share = p.total ? p.completed / p.total : p.status === "done" ? 1 : 0;
    const text = p.status === "failed" ? `failed: ${esc(p.error)}`
      : p.total ? `${size(p.completed)} of ${size(p.total)} (${Math.floor(share * 100)}%)` : esc(p.detail || p.status);
    return `<div class="pull-progress" data-pull="${esc(p.node)}/${esc(p.model)}" data-status="${esc(p.status)}">
      <span><b>${esc(p.model)}</b> → ${esc(p.node)} <span class="pill ${esc(p.status)}">${esc(p.status)}</span></span>
      <div class="progress" role="progressbar" aria-valuenow="${Math.round(share * 100)}" aria-valuemin="0" aria-valuemax="100"><div data-w="${share * 100}"></div></div>
      <span class="small ${p.status === "failed" ? "err" : "muted"}">${text}</span></div>`;
  }).join("");
  paint(box);
}

async function load() {
  try {
    rows = await api(`/dashboard/api/models?hours=${hours}`);
    renderTable();
    barList(root.querySelector(".chart-requests"), rows.map((r) => ({ label: r.model, value: r.requests })),
      { title: "Requests", format: (v) => count(v, "request") });
    barList(root.querySelector(".chart-speed"),
      rows.filter((r) => r.tokens_per_second).map((r) => ({ label: r.model, value: r.tokens_per_second })),
      { title: "Speed", format: tps });
    barList(root.querySelector(".chart-latency"),
      rows.filter((r) => r.p95_latency_ms).map((r) => ({ label: r.model, value: r.p95_latency_ms })),
      { title: "Latency p95", format: ms });
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

export async function modelAction(act, node, model) {
  const words = {
    pull: [`Pull ${model} onto ${node}?`, "The node downloads it from its registry; this may take a while and uses disk space.", "Pull", false],
    delete: [`Delete ${model} from ${node}?`, "The model's files are removed from that node's disk. Requests for it go to other nodes, or fail if none has it.", "Delete", true],
    unload: [`Unload ${model} from ${node}?`, "The model leaves that node's memory (keep_alive 0); its next request loads it again.", "Unload", false],
  }[act];
  if (!(await confirmAction({ title: words[0], body: words[1], confirm: words[2], danger: words[3] }))) return false;
  try {
    await api(`/dashboard/api/nodes/${encodeURIComponent(node)}/${act}`, { method: "POST", body: { model }, admin: true });
    toast(act === "pull" ? `Pulling ${model} onto ${node}` : `${model} ${act === "delete" ? "deleted from" : "unloaded from"} ${node}`);
    return true;
  } catch (error) {
    failed(error);
    return false;
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<div class="row mb">
        <div class="seg"><button data-hours="24" aria-pressed="false">Last day</button>
        <button data-hours="168" aria-pressed="true">Last week</button></div></div>
      <div class="grid wide"><div class="panel chart-requests"></div><div class="panel chart-speed"></div>
        <div class="panel chart-latency"></div>
        <form class="panel pull"><h3>Pull a model onto a node</h3><div class="row">
          <input name="model" placeholder="e.g. llama3.2:3b" aria-label="model">
          <select name="node" aria-label="node"></select><button class="primary">Pull</button></div>
          <p class="muted small">Asks first; needs the admin key when one is configured. Progress shows below.</p>
          <div class="pulls"></div></form></div>
      <div class="panel places table-scroll"><h3>Models on the nodes</h3><table><thead><tr><th>node</th><th>model</th><th>kind</th>
        <th class="num">size</th><th>state</th><th>actions</th></tr></thead><tbody></tbody></table></div>
      <div class="panel usage table-scroll"><h3>Usage</h3><table><thead><tr><th>model</th><th class="num">requests</th>
        <th class="num">p50 latency</th><th class="num">p95 latency</th><th class="num">p50 TTFT</th>
        <th class="num">speed</th><th class="num">cold loads</th><th>loaded on</th><th>served by</th>
        <th>last used</th></tr></thead><tbody></tbody></table></div>`;
    el.querySelector("form.pull").addEventListener("submit", (event) => {
      event.preventDefault();
      const model = event.target.model.value.trim();
      if (model) modelAction("pull", event.target.node.value, model);
    });
    el.querySelector(".places").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-act]");
      const tr = event.target.closest("tr[data-node]");
      if (button && tr) modelAction(button.dataset.act, tr.dataset.node, tr.dataset.model);
    });
    el.querySelector(".seg").addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      hours = Number(button.dataset.hours);
      for (const b of button.parentElement.children) b.setAttribute("aria-pressed", String(b === button));
      load();
    });
    subscribe(() => { if (!el.hidden) { renderPlaces(); renderTable(); } });
  },
  show() {
    renderPlaces();
    load();
  },
};
