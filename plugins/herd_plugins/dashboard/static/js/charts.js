// Tiny SVG charts: time series (lines or bars) and horizontal bars. No library needed.
import { esc } from "./util.js";

export const PALETTE = [
  "#2f6fde", "#e8833a", "#1f9d55", "#9b4dca", "#d63c3c", "#0f9488", "#c2410c", "#6b7385",
];

// The smallest "round" step (1, 2, 2.5 or 5 times a power of ten) of at least v.
function niceStep(v) {
  if (!(v > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 2.5, 5, 10]) if (v <= step * power) return step * power;
  return 10 * power;
}

function timeLabel(t, span) {
  const d = new Date(t * 1000);
  if (span <= 2 * 86400) return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

// series: [{name, points: [[t, value|null], ...]}]; every series shares the same t values.
export function timeChart(el, { series, format = String, height = 170, bars = false, title = "", integer = false }) {
  const points = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
  const head = title ? `<h3>${esc(title)}</h3>` : "";
  if (!points.length) {
    el.innerHTML = `${head}<div class="empty">No data in this window.</div>`;
    return;
  }
  const W = Math.max(320, Math.round(el.clientWidth || 640)), H = height, L = 50, R = 8, T = 8, B = 20;
  const ts = series[0].points.map((p) => p[0]);
  const n = ts.length, span = Math.max(1, ts[n - 1] - ts[0]);
  const raw = niceStep(Math.max(...points.map((p) => p[1])) / 4);
  const step = integer ? Math.max(1, Math.ceil(raw)) : raw;
  const top = step * 4;
  const slot = (W - L - R) / Math.max(1, n);
  const x = (i) => L + (i + 0.5) * slot;
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const v = step * i;
    parts.push(`<line class="axis" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>`,
      `<text x="${L - 4}" y="${y(v) + 3}" text-anchor="end">${esc(format(v))}</text>`);
  }
  const labels = Math.min(n, Math.max(2, Math.min(6, Math.floor((W - L) / 80))));
  for (let k = 0; k < labels; k++) {
    const i = labels === 1 ? 0 : Math.round((k * (n - 1)) / (labels - 1));
    const anchor = k === 0 ? "start" : k === labels - 1 ? "end" : "middle";
    parts.push(`<text x="${x(i)}" y="${H - 5}" text-anchor="${anchor}">${esc(timeLabel(ts[i], span))}</text>`);
  }
  series.forEach((s, index) => {
    const color = s.color || PALETTE[index % PALETTE.length];
    if (bars) {
      const width = Math.max(1, (slot * 0.8) / series.length);
      s.points.forEach(([t, v], i) => {
        if (!v) return;
        const left = x(i) - slot * 0.4 + index * width;
        parts.push(`<rect x="${left.toFixed(1)}" y="${y(v).toFixed(1)}" width="${width.toFixed(1)}" ` +
          `height="${(y(0) - y(v)).toFixed(1)}" fill="${color}"><title>${esc(s.name)} ${esc(timeLabel(t, 0))}: ${esc(format(v))}</title></rect>`);
      });
      return;
    }
    let d = "", pen = "M";
    s.points.forEach(([, v], i) => {
      if (v === null || v === undefined) { pen = "M"; return; }
      d += `${pen}${x(i).toFixed(1)} ${y(v).toFixed(1)} `;
      pen = "L";
    });
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8" stroke-linejoin="round"/>`);
    if (n <= 200) {
      s.points.forEach(([t, v], i) => {
        if (v === null || v === undefined) return;
        parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.2" fill="${color}">` +
          `<title>${esc(s.name)} ${esc(timeLabel(t, 0))}: ${esc(format(v))}</title></circle>`);
      });
    }
  });
  const legend = series.length > 1 || series[0].name
    ? `<div class="legend">${series.map((s, i) =>
        `<span><i style="background:${s.color || PALETTE[i % PALETTE.length]}"></i>${esc(s.name)}</span>`).join("")}</div>`
    : "";
  el.innerHTML = `${head}<div class="chart"><svg viewBox="0 0 ${W} ${H}" role="img" ` +
    `aria-label="${esc(title)}">${parts.join("")}</svg></div>${legend}`;
}

// rows: [{label, value}]; the widest bar is the largest value.
export function barList(el, rows, { format = String, title = "" } = {}) {
  const head = title ? `<h3>${esc(title)}</h3>` : "";
  const top = Math.max(0, ...rows.map((r) => r.value || 0)) || 1;
  el.innerHTML = head + (rows.length
    ? rows.map((r) => `<div class="hbar"><span title="${esc(r.label)}">${esc(r.label)}</span>` +
        `<div class="track"><div class="fill" style="width:${(100 * (r.value || 0)) / top}%"></div></div>` +
        `<span class="num">${esc(format(r.value))}</span></div>`).join("")
    : '<div class="empty">No data yet.</div>');
}
