// Trends: requests, latency and TTFT percentiles, tokens/s and errors over one window.
// Every number on the strip, the totals included, speaks of the window chosen above it.
import { timeChart } from "./charts.js";
import { api, count, esc, failed, ms, num, pct, rangeControl, rangeOf, tps } from "./util.js";

const state = { range: "hour", by: "", bench: false };
const TOP_SERIES = 6;
const WINDOW_NAMES = { hour: "last hour", day: "last day", week: "last week", custom: "chosen range" };
let root = null;
let timer = 0;

function seg(name, options, value) {
  return `<div class="seg" data-seg="${name}">${options.map(([v, label]) =>
    `<button type="button" data-value="${v}" aria-pressed="${v === value}">${label}</button>`).join("")}</div>`;
}

function stat(value, label) {
  return `<div class="stat"><b>${value}</b><span>${esc(label)}</span></div>`;
}

function points(rows, field) {
  return rows.map((r) => [r.t, r[field] ?? null]);
}

const requests = (v) => count(v, "request");
const errors = (v) => count(v, "error");

function draw(data) {
  const panels = root.querySelectorAll(".chart-panel");
  const step = data.step;
  const per = `per ${step >= 3600 ? `${step / 3600} h` : `${step / 60} min`}`;
  if (!state.by) {
    const rows = data.series.all || [];
    timeChart(panels[0], { title: "Requests", subtitle: per, bars: true, integer: true, step, format: requests,
      series: [{ name: "requests", points: points(rows, "requests") }] });
    timeChart(panels[1], { title: "Latency", step, format: ms,
      series: [{ name: "p50", points: points(rows, "p50_latency_ms") }, { name: "p95", points: points(rows, "p95_latency_ms") }] });
    timeChart(panels[2], { title: "Time to first token", step, format: ms,
      series: [{ name: "p50", points: points(rows, "p50_ttft_ms") }, { name: "p95", points: points(rows, "p95_ttft_ms") }] });
    timeChart(panels[3], { title: "Speed", subtitle: "mean per request", step, format: tps,
      series: [{ name: "tokens/s", points: points(rows, "tokens_per_second") }] });
    timeChart(panels[4], { title: "Node failures", subtitle: `${per}; client errors apart`, bars: true, integer: true, step, format: errors,
      series: [{ name: "failed", color: "#d63c3c", points: points(rows, "errors") },
        { name: "rejected (client)", color: "#d98b0b", points: points(rows, "rejected") }] });
    return;
  }
  const keys = Object.keys(data.series)
    .map((key) => [key, data.series[key].reduce((sum, r) => sum + r.requests, 0)])
    .sort((a, b) => b[1] - a[1]).slice(0, TOP_SERIES).map(([key]) => key);
  const pick = (field) => keys.map((key) => ({ name: key, points: points(data.series[key], field) }));
  timeChart(panels[0], { title: "Requests", subtitle: per, integer: true, step, series: pick("requests"), format: requests });
  timeChart(panels[1], { title: "Latency p95", step, series: pick("p95_latency_ms"), format: ms });
  timeChart(panels[2], { title: "Time to first token p95", step, series: pick("p95_ttft_ms"), format: ms });
  timeChart(panels[3], { title: "Speed", step, series: pick("tokens_per_second"), format: tps });
  timeChart(panels[4], { title: "Node failures", subtitle: per, integer: true, step, series: pick("errors"), format: errors });
}

async function load() {
  const params = new URLSearchParams({ window: state.range });
  if (state.by) params.set("by", state.by);
  if (state.bench) params.set("bench", "true");
  if (state.range === "custom") {
    const { since, until } = rangeOf(root, "custom");
    if (!since) return;
    params.set("since", String(since));
    params.set("until", String(until));
  }
  try {
    const data = await api(`/dashboard/api/series?${params}`);
    const t = data.totals, name = WINDOW_NAMES[data.window] || data.window;
    root.querySelector(".stats").innerHTML =
      stat(num(t.requests), `requests, ${name}`) + stat(ms(t.p50_latency_ms), `p50 latency, ${name}`) +
      stat(ms(t.p95_latency_ms), `p95 latency, ${name}`) + stat(ms(t.p50_ttft_ms), `p50 TTFT, ${name}`) +
      stat(tps(t.tokens_per_second), `mean speed, ${name}`) +
      stat(pct(t.error_rate), `failed on a node, ${name}`) + stat(num(t.rejected), `client errors, ${name}`);
    draw(data);
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<div class="row mb">${rangeControl(state.range)}
        ${seg("by", [["", "Whole fleet"], ["model", "By model"], ["node", "By node"]], state.by)}
        <label class="row small"><input type="checkbox" name="bench"> include benchmark runs</label></div>
      <div class="stats"></div>
      <div class="grid wide">${'<div class="panel chart-panel"></div>'.repeat(5)}</div>`;
    el.addEventListener("click", (event) => {
      if (event.target.closest(".apply-range")) { load(); return; }
      const button = event.target.closest(".seg button");
      if (!button) return;
      const group = button.parentElement;
      const key = group.dataset.seg;
      state[key] = button.dataset.value;
      for (const b of group.children) b.setAttribute("aria-pressed", String(b === button));
      if (key === "range") el.querySelector(".custom-range").hidden = state.range !== "custom";
      if (state.range !== "custom" || key !== "range") load();
    });
    el.querySelector("input[name=bench]").addEventListener("change", (event) => {
      state.bench = event.target.checked;
      load();
    });
  },
  show() {
    load();
    clearInterval(timer);
    timer = setInterval(load, 30000);
  },
  hide() { clearInterval(timer); },
};
