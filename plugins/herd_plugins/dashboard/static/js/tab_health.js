// Health: each check with its status and what to do about it.
import { api, esc, failed, time } from "./util.js";

const LABELS = { ok: "OK", warn: "Warning", bad: "Problem", unknown: "Unknown" };
let root = null;
let timer = 0;

async function load() {
  try {
    const data = await api("/dashboard/api/health");
    const counts = {};
    for (const check of data.checks) counts[check.status] = (counts[check.status] || 0) + 1;
    root.querySelector(".summary").innerHTML = ["bad", "warn", "ok", "unknown"]
      .filter((s) => counts[s]).map((s) => `<span class="pill ${s}">${counts[s]} ${LABELS[s].toLowerCase()}</span>`)
      .join(" ") + ` <span class="muted small">checked ${time(data.t)}</span>`;
    root.querySelector(".checks").innerHTML = data.checks.map((c) => `
      <div class="check" data-check="${esc(c.id)}" data-status="${esc(c.status)}">
        <span><span class="pill ${esc(c.status)}">${LABELS[c.status] || esc(c.status)}</span></span>
        <div><b>${esc(c.title)}</b> — ${esc(c.detail)}</div>
        ${c.advice ? `<div class="advice">${esc(c.advice)}</div>` : ""}</div>`).join("");
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<div class="row summary mb"></div>
      <div class="panel checks"></div>
      <p class="muted small">Checks look at the last hour of traces and fleet events; they refresh every 10 s.
      The dashboard's own benchmark runs are left out, and a client's mistake (a 4xx) never counts
      as a node's failure.</p>`;
  },
  show() {
    load();
    clearInterval(timer);
    timer = setInterval(load, 10000);
  },
  hide() { clearInterval(timer); },
};
