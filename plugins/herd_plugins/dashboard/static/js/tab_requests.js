// Requests: the trace log, newest first and live, filtered on the server and paged by
// keyset (a cursor), each row opening the whole trace.
import { api, esc, failed, ms, num, rangeControl, rangeOf, tags, time } from "./util.js";

const FILTERS = ["status", "model", "node", "tag", "api_key", "kind"];
const LIVE_EVERY_MS = 3000;
let root = null;
let range = "any";
let next = null;
let timer = 0;
let open = "";

function select(name, label, values, chosen) {
  return `<label class="field">${label}<select name="${name}"><option value="">any</option>${values.map((v) =>
    `<option${v === chosen ? " selected" : ""}>${esc(v)}</option>`).join("")}</select></label>`;
}

async function loadFacets() {
  try {
    const facets = await api("/dashboard/api/traces/facets");
    const box = root.querySelector(".facets");
    const chosen = Object.fromEntries(FILTERS.map((f) => [f, root.querySelector(`select[name=${f}]`)?.value || ""]));
    box.innerHTML = select("status", "status", facets.status, chosen.status) +
      select("model", "model", facets.model, chosen.model) + select("node", "node", facets.node, chosen.node) +
      select("tag", "tag", facets.tag, chosen.tag) + select("api_key", "API key", facets.api_key, chosen.api_key) +
      select("kind", "kind", facets.kind, chosen.kind);
  } catch (error) {
    failed(error);
  }
}

function query(cursor) {
  const params = new URLSearchParams({ limit: "50" });
  for (const name of FILTERS) {
    const value = root.querySelector(`select[name=${name}]`)?.value;
    if (value) params.set(name, value);
  }
  const { since, until } = rangeOf(root, range);
  if (since) params.set("since", String(since));
  if (until && range === "custom") params.set("until", String(until));
  if (cursor) params.set("cursor", cursor);
  return `/dashboard/api/traces?${params}`;
}

function row(t) {
  const status = `<span class="pill ${esc(t.status)}">${esc(t.status)}</span>` +
    (t.http_status && t.http_status !== 200 ? ` <span class="muted small">${t.http_status}</span>` : "");
  const model = t.served_model && t.served_model !== t.model ? `${esc(t.model)} → ${esc(t.served_model)}` : esc(t.model);
  return `<tr data-id="${esc(t.request_id)}" data-status="${esc(t.status)}"${t.request_id === open ? ' class="open"' : ""}>
    <td>${time(t.received_at)}</td><td>${status}</td><td>${esc(t.kind)}<span class="muted small"> ${esc(t.api)}/${esc(t.endpoint)}</span></td>
    <td>${model}</td><td>${esc(t.node) || '<span class="muted">—</span>'}</td>
    <td class="num">${ms(t.queue_ms)}</td><td class="num">${t.ttft_ms ? ms(t.ttft_ms) : "—"}</td><td class="num">${ms(t.latency_ms)}</td>
    <td class="num">${num(t.prompt_tokens)} / ${num(t.completion_tokens)}</td><td>${esc(t.api_key)}</td><td>${tags(t.tags)}</td></tr>`;
}

async function load(more = false) {
  try {
    const page = await api(query(more ? next : null));
    const body = root.querySelector("tbody");
    const rows = page.traces.map(row).join("");
    if (more) body.insertAdjacentHTML("beforeend", rows);
    else body.innerHTML = rows || '<tr><td colspan="11" class="empty">No request matches these filters.</td></tr>';
    next = page.next;
    root.querySelector(".more").hidden = !next;
    const shown = body.querySelectorAll("tr[data-id]").length;
    root.querySelector(".count").textContent = page.total === null
      ? `${num(shown)} shown` : `${num(shown)} of ${num(page.total)} shown`;
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

function kv(pairs) {
  return `<dl>${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;
}

function scoreTable(scores) {
  const nodes = Object.keys(scores || {});
  if (!nodes.length) return '<p class="muted">No ranking (rejected before routing, or one candidate).</p>';
  const signals = [...new Set(nodes.flatMap((n) => Object.keys(scores[n])))].sort();
  return `<div class="table-scroll"><table><thead><tr><th>node</th>${signals.map((s) => `<th class="num">${esc(s)}</th>`).join("")}</tr></thead>
    <tbody>${nodes.map((n) => `<tr><td>${esc(n)}</td>${signals.map((s) => `<td class="num">${num(scores[n][s], 3)}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`;
}

// Times in an attempt read as offsets from the request's arrival ("+12 ms").
function cell(key, value, received) {
  if (key.endsWith("_at") && typeof value === "number" && value > 1e9) return `+${ms((value - received) * 1000)}`;
  return esc(typeof value === "object" ? JSON.stringify(value) : value);
}

function attemptTable(attempts, received) {
  if (!attempts || !attempts.length) return '<p class="muted">No attempt reached a node.</p>';
  const cols = [...new Set(attempts.flatMap((a) => Object.keys(a)))];
  return `<div class="table-scroll"><table><thead><tr>${cols.map((c) => `<th>${esc(c.replace(/_at$/, ""))}</th>`).join("")}</tr></thead>
    <tbody>${attempts.map((a) => `<tr>${cols.map((c) => `<td>${cell(c, a[c], received)}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`;
}

async function showTrace(id) {
  const box = root.querySelector(".trace");
  try {
    const t = await api(`/dashboard/api/traces/${encodeURIComponent(id)}`);
    open = id;
    for (const tr of root.querySelectorAll("tbody tr")) tr.classList.toggle("open", tr.dataset.id === id);
    box.hidden = false;
    box.innerHTML = `<div class="row"><h3>Request <span class="mono">${esc(t.request_id)}</span></h3><span class="spacer"></span>
      <button class="small close">Close</button></div>
      <div class="detail">
        <div>${kv([["received", time(t.received_at)], ["status", `<span class="pill ${esc(t.status)}">${esc(t.status)}</span> HTTP ${t.http_status}`],
          ["error", esc(t.error) || "—"], ["API", `${esc(t.api)} /${esc(t.endpoint)} (${esc(t.kind)})`],
          ["model", `${esc(t.model)}${t.served_model && t.served_model !== t.model ? ` → served ${esc(t.served_model)}` : ""}`],
          ["node", esc(t.node) || "—"], ["retries", num(t.retries)], ["excluded", (t.excluded_nodes || []).map(esc).join(", ") || "—"]])}</div>
        <div>${kv([["queue wait", ms(t.queue_ms)], ["TTFT", t.ttft_ms ? ms(t.ttft_ms) : "—"], ["model load", t.load_ms ? ms(t.load_ms) : "—"],
          ["latency", ms(t.latency_ms)], ["tokens in / out", `${num(t.prompt_tokens)} / ${num(t.completion_tokens)}`],
          ["speed", t.tokens_per_second ? `${num(t.tokens_per_second, 1)} tokens/s` : "—"], ["stream", t.stream ? "yes" : "no"]])}</div>
        <div>${kv([["API key", esc(t.api_key) || "—"], ["client", esc(t.client) || "—"], ["session", esc(t.session) || "—"],
          ["tags", tags(t.tags) || "—"], ["trace id", `<span class="mono">${esc(t.trace_id)}</span>`]])}</div>
      </div>
      <h3>Notes</h3>${(t.notes || []).length ? `<ul>${t.notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>` : '<p class="muted">None.</p>'}
      <h3>Attempts</h3>${attemptTable(t.attempts, t.received_at)}
      <h3>Scores per signal</h3>${scoreTable(t.scores)}
      ${Object.keys(t.rejections || {}).length ? `<h3>Nodes left out</h3>${kv(Object.entries(t.rejections).map(([n, why]) => [n, esc(why)]))}` : ""}`;
    box.scrollIntoView({ block: "nearest" });
  } catch (error) {
    failed(error);
  }
}

function schedule() {
  clearInterval(timer);
  const live = root.querySelector("input[name=live]").checked;
  // live: the first page refreshes while nobody has paged further down
  if (live) timer = setInterval(() => { if (!root.hidden && !root.querySelector("tbody tr[data-id]:nth-child(51)")) load(); }, LIVE_EVERY_MS);
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<form class="panel filters-form"><div class="filters"><span class="facets"></span></div>
        <div class="row">${rangeControl(range, { any: true })}<span class="spacer"></span>
        <label class="row small"><input type="checkbox" name="live" checked> live</label>
        <button type="button" class="small clear">Clear filters</button></div></form>
      <div class="panel"><div class="row mb"><h3>Requests <span class="muted small">newest first</span></h3><span class="spacer"></span>
        <span class="muted small count"></span></div>
        <div class="table-scroll"><table class="log"><thead><tr><th>received</th><th>status</th><th>kind</th><th>model</th><th>node</th>
        <th class="num">queue</th><th class="num">TTFT</th><th class="num">latency</th><th class="num">tokens in / out</th>
        <th>API key</th><th>tags</th></tr></thead><tbody></tbody></table></div>
        <p><button class="more" hidden>Load 50 more</button></p></div>
      <div class="panel trace" hidden></div>`;
    const form = el.querySelector("form");
    form.addEventListener("change", (event) => {
      if (event.target.name === "live") schedule();
      else if (event.target.tagName === "SELECT") load();
    });
    form.addEventListener("submit", (event) => event.preventDefault());
    form.addEventListener("click", (event) => {
      const button = event.target.closest(".range button");
      if (button) {
        range = button.dataset.value;
        for (const b of button.parentElement.children) b.setAttribute("aria-pressed", String(b === button));
        el.querySelector(".custom-range").hidden = range !== "custom";
        if (range !== "custom") load();
      } else if (event.target.closest(".apply-range")) {
        load();
      } else if (event.target.closest(".clear")) {
        for (const sel of form.querySelectorAll("select")) sel.value = "";
        load();
      }
    });
    el.querySelector(".more").addEventListener("click", () => load(true));
    el.querySelector("tbody").addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-id]");
      if (tr) showTrace(tr.dataset.id);
    });
    el.querySelector(".trace").addEventListener("click", (event) => {
      if (event.target.closest(".close")) { el.querySelector(".trace").hidden = true; open = ""; }
    });
  },
  show() { loadFacets(); load(); schedule(); },
  hide() { clearInterval(timer); },
};
