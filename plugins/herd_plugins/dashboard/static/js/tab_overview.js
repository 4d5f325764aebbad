// Fleet Overview: a card per node and the live queue, redrawn on every snapshot.
import { subscribe } from "./live.js";
import { api, count, esc, failed, num, paint, seconds, size, tags, toast } from "./util.js";

const BADGES = { text: "TEXT", image: "IMAGE", stt: "STT", embed: "EMBED" };
let root = null;
let visible = false;
let pending = null;
// Render timings, read by the benchmark (benchmarks/bench_dashboard.py) and the tests.
const timing = (window.herdOverview = { renders: 0, firstAt: null, lastMs: 0, maxMs: 0 });

// What serves the node: Ollama and its version, or another backend's kind of server.
function serverLabel(node) {
  if (node.type && node.type !== "ollama") {
    return node.type === "openai" ? " · OpenAI-compatible server" : ` · ${esc(node.type)} server`;
  }
  return node.version ? ` · Ollama ${esc(node.version)}` : "";
}

function bar(label, used, total, text) {
  if (!total) {
    return `<div class="bar"><span>${label}</span><div class="track"></div><span class="value">n/a</span></div>`;
  }
  const share = Math.min(1, used / total);
  const level = share >= 0.95 ? "full" : share >= 0.85 ? "hot" : "";
  return `<div class="bar"><span>${label}</span><div class="track"><div class="fill ${level}" ` +
    `data-w="${share * 100}"></div></div><span class="value">${text}</span></div>`;
}

// "53.0 / 64.0 GB": used and total in the total's unit (MB below a gigabyte).
function pair(used, total) {
  if (total < 1e9) return `${Math.round(used / 1e6)} / ${Math.round(total / 1e6)} MB`;
  return `${(used / 1e9).toFixed(1)} / ${(total / 1e9).toFixed(1)} GB`;
}

function card(node) {
  const cpu = node.cpu_count ? bar("CPU", node.cpu_percent, 100, `${num(node.cpu_percent)}% of ${node.cpu_count} cores`) : bar("CPU", 0, 0);
  const temp = node.temperature === null || node.temperature === undefined ? "n/a" : `${num(node.temperature)} °C`;
  const loaded = node.loaded.length
    ? node.loaded.map((m) => `<li><span title="${esc(m.name)}">${esc(m.name)}</span>` +
        `<span>${size(m.size_vram || m.size)}</span>${m.context ? `<span class="muted">ctx ${num(m.context)}</span>` : ""}</li>`).join("")
    : '<li class="muted">no model loaded</li>';
  const drain = node.state === "draining" ? "Undrain" : "Drain";
  return `<article class="card ${esc(node.state)}" data-node="${esc(node.name)}">
    <header><b title="${esc(node.url)}">${esc(node.name).replaceAll(":", ":<wbr>")}</b><span class="pill ${esc(node.state)}">${esc(node.state)}</span>
      <span class="spacer"></span><button class="small" data-action="${drain.toLowerCase()}" data-name="${esc(node.name)}">${drain}</button></header>
    <div class="muted small">${esc(node.url)}${serverLabel(node)} · ${node.agent ? "agent" : "polled"}</div>
    ${node.error ? `<div class="small err">${esc(node.error)}</div>` : ""}
    ${cpu}
    ${bar("RAM", node.ram_used, node.ram_total, pair(node.ram_used, node.ram_total))}
    ${bar("VRAM", node.vram_used, node.vram_total, pair(node.vram_used, node.vram_total))}
    <div class="bar"><span>Temp</span><span></span><span class="value">${temp}</span></div>
    <div class="small">In flight <b>${node.in_flight}</b> · queued <b>${node.queued}</b> · ${node.slots} at once per model · ${count(node.models, "model")} on disk</div>
    <ul class="models">${loaded}</ul>
    <div>${tags(node.tags)}</div>
  </article>`;
}

function row(item) {
  const kind = BADGES[item.kind] ? item.kind : "text";
  const state = item.state === "running"
    ? '<span class="pill running">running</span>'
    : `<span class="pill">queued #${item.position}</span>`;
  return `<tr data-request="${esc(item.id)}" data-state="${item.state}">
    <td><span class="badge ${kind}">[${BADGES[kind]}]</span></td><td>${esc(item.model)}</td>
    <td>${esc(item.node)}</td><td>${state}</td><td class="num">${seconds(item.wait_s)}</td>
    <td>${tags(item.tags)}</td></tr>`;
}

function stat(value, label) {
  return `<div class="stat"><b>${value}</b><span>${label}</span></div>`;
}

function render(fleet) {
  const started = performance.now();
  const s = fleet.summary;
  const states = s.states || {};
  const pulls = (fleet.pulls || []).map((p) =>
    `<span class="pill ${p.status === "pulling" ? "running" : esc(p.status)}" title="${esc(p.error)}">` +
    `pull ${esc(p.model)} → ${esc(p.node)}: ${esc(p.status)}` +
    `${p.status === "pulling" && p.total ? ` ${Math.floor((100 * p.completed) / p.total)}%` : ""}</span>`).join(" ");
  root.querySelector(".stats").innerHTML =
    stat(`${states.online || 0} / ${s.nodes}`, "nodes online") +
    stat(s.running, "running") + stat(s.queued, "queued") + stat(s.held, "held (all queues full)") +
    stat(s.loaded, "models loaded") + stat(s.reaped, "reaped") + (pulls ? `<div class="row">${pulls}</div>` : "");
  root.querySelector(".grid").innerHTML = fleet.nodes.length
    ? fleet.nodes.map(card).join("")
    : '<div class="empty">No nodes yet. Add nodes to the YAML file or start herd-node.</div>';
  paint(root.querySelector(".grid"));
  const more = fleet.queue_truncated ? `<tr><td colspan="6" class="muted">and ${fleet.queue_truncated} more</td></tr>` : "";
  root.querySelector("tbody").innerHTML = fleet.queue.length
    ? fleet.queue.map(row).join("") + more
    : '<tr><td colspan="6" class="empty">Nothing queued or running.</td></tr>';
  root.querySelector(".queue-count").textContent = `${fleet.queue.length + (fleet.queue_truncated || 0)}`;
  const took = performance.now() - started;
  timing.renders++;
  timing.lastMs = took;
  timing.maxMs = Math.max(timing.maxMs, took);
  if (timing.firstAt === null && fleet.nodes.length) timing.firstAt = performance.now();
  root.dataset.updated = String(fleet.t);
}

async function onClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const { action, name } = button.dataset;
  button.disabled = true;
  try {
    await api(`/fleet/nodes/${encodeURIComponent(name)}/${action}`, { method: "POST", admin: true });
    toast(`${name}: ${action === "drain" ? "draining" : "taking requests again"}`);
  } catch (error) {
    failed(error);
  } finally {
    button.disabled = false;
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<div class="stats"></div>
      <h2>Nodes</h2><div class="grid"></div>
      <h2>Queue <span class="muted small">(<span class="queue-count">0</span> requests, oldest first)</span></h2>
      <div class="panel"><table class="queue"><thead><tr><th>kind</th><th>model</th><th>node</th>
      <th>state</th><th class="num">waiting</th><th>tags</th></tr></thead><tbody></tbody></table></div>`;
    el.querySelector(".grid").addEventListener("click", onClick);
    subscribe((fleet) => {
      pending = fleet;
      if (visible) render(fleet);
    });
  },
  show() {
    visible = true;
    if (pending) render(pending);
  },
  hide() { visible = false; },
};
