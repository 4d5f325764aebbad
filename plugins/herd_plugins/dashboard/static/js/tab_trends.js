// Trends: requests, latency and TTFT percentiles, tokens/s and errors over time.
import { timeChart } from "./charts.js";
import { api, esc, failed, ms, num, pct } from "./util.js";

const state = { window: "hour", by: "" };
const TOP_SERIES = 6;
let root = null;
let timer = 0;

function seg(name, options, value) {
  return `<div class="seg" data-seg="${name}">${options.map(([v, label]) =>
    `<button data-value="${v}" aria-pressed="${v === value}">${label}</button>`).join("")}</div>`;
}

function stat(value, label) {
  return `<div class="stat"><b>${value}</b><span>${esc(label)}</span></div>`;
}

function points(rows, field) {
  return rows.map((r) => [r.t, r[field] ?? null]);
}

function drawFleet(rows) {
  const panels = root.querySelectorAll(".chart-panel");
  timeChart(panels[0], { title: "Requests", bars: true, integer: true, series: [{ name: "requests", points: points(rows, "requests") }], format: (v) => num(v, 1) });
  timeChart(panels[1], {
    title: "Latency", format: ms,
    series: [{ name: "p50", points: points(rows, "p50_latency_ms") }, { name: "p95", points: points(rows, "p95_latency_ms") }],
  });
  timeChart(panels[2], {
    title: "Time to first token", format: ms,
    series: [{ name: "p50", points: points(rows, "p50_ttft_ms") }, { name: "p95", points: points(rows, "p95_ttft_ms") }],
  });
  timeChart(panels[3], { title: "Tokens/s (mean per request)", series: [{ name: "tokens/s", points: points(rows, "tokens_per_second") }], format: (v) => num(v, 1) });
  timeChart(panels[4], { title: "Errors", bars: true, integer: true, series: [{ name: "errors", color: "#d63c3c", points: points(rows, "errors") }], format: (v) => num(v, 1) });
}

function drawBy(series) {
  const keys = Object.keys(series)
    .map((key) => [key, series[key].reduce((sum, r) => sum + r.requests, 0)])
    .sort((a, b) => b[1] - a[1]).slice(0, TOP_SERIES).map(([key]) => key);
  const pick = (field) => keys.map((key) => ({ name: key, points: points(series[key], field) }));
  const panels = root.querySelectorAll(".chart-panel");
  timeChart(panels[0], { title: "Requests", integer: true, series: pick("requests"), format: (v) => num(v, 1) });
  timeChart(panels[1], { title: "Latency p95", series: pick("p95_latency_ms"), format: ms });
  timeChart(panels[2], { title: "Time to first token p95", series: pick("p95_ttft_ms"), format: ms });
  timeChart(panels[3], { title: "Tokens/s", series: pick("tokens_per_second"), format: (v) => num(v, 1) });
  timeChart(panels[4], { title: "Errors", integer: true, series: pick("errors"), format: (v) => num(v, 1) });
}

async function load() {
  const by = state.by ? `&by=${state.by}` : "";
  try {
    const [data, overview] = await Promise.all([
      api(`/dashboard/api/series?window=${state.window}${by}`),
      api("/dashboard/api/overview"),
    ]);
    const h = overview.hour, d = overview.day;
    root.querySelector(".stats").innerHTML =
      stat(num(h.requests), "requests, last hour") + stat(num(d.requests), "requests, last day") +
      stat(ms(h.p50_latency_ms), "p50 latency, hour") + stat(ms(h.p95_latency_ms), "p95 latency, hour") +
      stat(ms(h.p50_ttft_ms), "p50 TTFT, hour") + stat(num(h.tokens_per_second, 1), "tokens/s, hour") +
      stat(pct(d.error_rate), "errors, last day");
    if (state.by) drawBy(data.series);
    else drawFleet(data.series.all || []);
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<div class="row" style="margin-bottom:14px">
        ${seg("window", [["hour", "Last hour"], ["day", "Last day"], ["week", "Last week"]], state.window)}
        ${seg("by", [["", "Whole fleet"], ["model", "By model"], ["node", "By node"]], state.by)}</div>
      <div class="stats"></div>
      <div class="grid wide">${'<div class="panel chart-panel"></div>'.repeat(5)}</div>`;
    el.addEventListener("click", (event) => {
      const button = event.target.closest(".seg button");
      if (!button) return;
      const group = button.parentElement;
      state[group.dataset.seg] = button.dataset.value;
      for (const b of group.children) b.setAttribute("aria-pressed", String(b === button));
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
