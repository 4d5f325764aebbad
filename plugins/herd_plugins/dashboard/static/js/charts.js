// Small SVG charts of our own (no library, nothing fetched): time series as lines or bars
// with hover values and a crosshair, and horizontal bar lists. Strict-CSP safe: no inline
// styles or handlers; sizes and colours are SVG attributes or set through the CSSOM.
import { esc, paint } from "./util.js";

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

// A bucket's label: time of day for buckets under a day, the date for daily ones.
export function bucketLabel(t, step) {
  const d = new Date(t * 1000);
  if (step >= 86400) return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  const clock = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return step >= 3600 ? `${d.toLocaleDateString(undefined, { weekday: "short" })} ${clock}` : clock;
}

// Which buckets get a tick label: every one when they fit, else every k-th, always from the
// first; never rounding indices (which skipped a day of seven).
export function tickIndices(n, width, minGap = 56) {
  const fit = Math.max(1, Math.floor(width / minGap));
  const every = Math.max(1, Math.ceil(n / fit));
  const out = [];
  for (let i = 0; i < n; i += every) out.push(i);
  return out;
}

// series: [{name, points: [[t, value|null], ...]}]; all series share the same t values.
// step: bucket seconds (for labels); format: a value with its unit ("12 req", "340 ms").
export function timeChart(el, { series, format = String, height = 170, bars = false, title = "",
  integer = false, step = 0, subtitle = "" } = {}) {
  const points = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
  const head = title ? `<h3>${esc(title)}${subtitle ? ` <span class="muted small">${esc(subtitle)}</span>` : ""}</h3>` : "";
  if (!points.length || !series[0].points.length) {
    el.innerHTML = `${head}<div class="empty">No data in this window.</div>`;
    return;
  }
  const raw = niceStep(Math.max(...points.map((p) => p[1])) / 4);
  const yStep = integer ? Math.max(1, Math.ceil(raw)) : raw;
  const top = yStep * 4;
  // the left margin fits the longest axis label, unit included
  const longest = Math.max(...[0, 1, 2, 3, 4].map((k) => String(format(yStep * k)).length));
  const W = Math.max(320, Math.round(el.clientWidth || 640)), H = height, L = 10 + longest * 5.6, R = 10, T = 8, B = 20;
  const ts = series[0].points.map((p) => p[0]);
  const n = ts.length;
  const bucket = step || (n > 1 ? ts[1] - ts[0] : 3600);
  const slot = (W - L - R) / Math.max(1, n);
  const x = (i) => L + (i + 0.5) * slot;
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const v = yStep * i;
    parts.push(`<line class="axis" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>`,
      `<text x="${L - 4}" y="${y(v) + 3}" text-anchor="end">${esc(format(v))}</text>`);
  }
  for (const i of tickIndices(n, W - L - R)) {
    parts.push(`<line class="tick" x1="${x(i)}" x2="${x(i)}" y1="${H - B}" y2="${H - B + 3}"/>`,
      `<text x="${x(i)}" y="${H - 5}" text-anchor="middle">${esc(bucketLabel(ts[i], bucket))}</text>`);
  }
  const colors = series.map((s, index) => s.color || PALETTE[index % PALETTE.length]);
  series.forEach((s, index) => {
    const color = colors[index];
    if (bars) {
      const width = Math.max(1, (slot * 0.8) / series.length);
      s.points.forEach(([, v], i) => {
        if (!v) return;
        const left = x(i) - slot * 0.4 + index * width;
        parts.push(`<rect x="${left.toFixed(1)}" y="${y(v).toFixed(1)}" width="${width.toFixed(1)}" ` +
          `height="${(y(0) - y(v)).toFixed(1)}" fill="${color}"/>`);
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
      s.points.forEach(([, v], i) => {
        if (v === null || v === undefined) return;
        parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2" fill="${color}"/>`);
      });
    }
  });
  parts.push(`<line class="crosshair" x1="0" x2="0" y1="${T}" y2="${H - B}" visibility="hidden"/>`,
    `<rect class="hover-area" x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="transparent"/>`);
  const legend = series.length > 1 || series[0].name
    ? `<div class="legend">${series.map((s, i) =>
        `<span><i data-bg="${colors[i]}"></i>${esc(s.name)}</span>`).join("")}</div>`
    : "";
  el.innerHTML = `${head}<div class="chart"><svg viewBox="0 0 ${W} ${H}" role="img" ` +
    `aria-label="${esc(title)}">${parts.join("")}</svg><div class="tip" hidden></div></div>${legend}`;
  paint(el);
  const svg = el.querySelector("svg"), tip = el.querySelector(".tip"), cross = el.querySelector(".crosshair");
  const at = (event) => {
    const box = svg.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * W;
    return Math.min(n - 1, Math.max(0, Math.floor((px - L) / slot)));
  };
  svg.addEventListener("mousemove", (event) => {
    const i = at(event);
    cross.setAttribute("x1", x(i));
    cross.setAttribute("x2", x(i));
    cross.setAttribute("visibility", "visible");
    tip.innerHTML = `<b>${esc(bucketLabel(ts[i], Math.min(bucket, 3600)))}</b>` + series.map((s, k) => {
      const v = s.points[i][1];
      return `<div><i data-bg="${colors[k]}"></i>${esc(s.name || title)}: <b>${v === null || v === undefined ? "—" : esc(format(v))}</b></div>`;
    }).join("");
    paint(tip);
    tip.hidden = false;
    const box = svg.getBoundingClientRect();
    const left = (x(i) / W) * box.width;
    tip.style.left = `${Math.min(left + 12, box.width - tip.offsetWidth - 4)}px`;
    tip.style.top = "4px";
    el.dataset.hover = String(i);
  });
  svg.addEventListener("mouseleave", () => {
    tip.hidden = true;
    cross.setAttribute("visibility", "hidden");
  });
}

// rows: [{label, value}]; the widest bar is the largest value.
export function barList(el, rows, { format = String, title = "" } = {}) {
  const head = title ? `<h3>${esc(title)}</h3>` : "";
  const top = Math.max(0, ...rows.map((r) => r.value || 0)) || 1;
  el.innerHTML = head + (rows.length
    ? rows.map((r) => `<div class="hbar"><span title="${esc(r.label)}">${esc(r.label)}</span>` +
        `<div class="track"><div class="fill" data-w="${(100 * (r.value || 0)) / top}"></div></div>` +
        `<span class="num">${esc(format(r.value))}</span></div>`).join("")
    : '<div class="empty">No data yet.</div>');
  paint(el);
}
