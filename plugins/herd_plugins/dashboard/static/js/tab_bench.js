// Benchmarks: a bounded load test from the page. Only models that can serve the chosen
// workload are offered; a typed model wins over the list; a run stops at the first 4xx or
// at the error share set here, and says why.
import { live, subscribe } from "./live.js";
import { api, esc, failed, ms, num, paint, time, toast } from "./util.js";

let root = null;
let timer = 0;

function modelOptions() {
  const fleet = live.fleet;
  const form = root.querySelector("form");
  if (!fleet) return;
  const want = form.workload.value === "embed" ? "embed" : "text";
  const names = (fleet.models || []).filter((m) => m.workload === want && m.on.length + m.loaded.length)
    .map((m) => m.name);
  const select = form.model;
  const key = `${want}:${names.join(",")}`;
  if (select.dataset.key === key) return;
  const chosen = names.includes(select.value) ? select.value : names[0];
  select.innerHTML = names.length
    ? names.map((n) => `<option${n === chosen ? " selected" : ""}>${esc(n)}</option>`).join("")
    : `<option value="">no ${want === "embed" ? "embedding" : "text"} model on any node</option>`;
  select.dataset.key = key;
}

function renderCurrent(run) {
  const box = root.querySelector(".current");
  if (!run) {
    box.innerHTML = '<p class="muted">No benchmark has run since the router started.</p>';
    return;
  }
  const share = run.status === "running" ? run.progress || 0 : 1;
  const why = run.stop_reason || run.error;
  box.innerHTML = `<div class="row"><b>${esc(run.model)}</b><span class="muted small">${esc(run.workload || "chat")}</span>
      <span class="pill ${esc(run.status)}">${esc(run.status)}</span>
      <span class="muted small">${num(run.concurrency)} at once for up to ${num(run.duration_s)} s</span><span class="spacer"></span>
      <span class="small">${num(run.requests)} requests, ${num(run.errors)} failed</span>
      ${run.status === "running" ? '<button class="small cancel">Cancel</button>' : ""}</div>
    <div class="progress" role="progressbar" aria-valuenow="${Math.round(share * 100)}" aria-valuemin="0" aria-valuemax="100">
      <div data-w="${share * 100}"></div></div>
    ${why ? `<p class="small err stop-reason">${esc(why)}</p>` : ""}`;
  paint(box);
}

function renderHistory(history) {
  root.querySelector("tbody").innerHTML = history.length
    ? history.map((r) => `<tr data-run="${esc(r.id)}" data-status="${esc(r.status)}"><td>${time(r.started_at)}</td><td>${esc(r.model)}</td>
        <td class="num">${num(r.concurrency)}</td><td class="num">${num(r.duration_s)} s</td>
        <td class="num">${num(r.requests)}</td><td class="num">${num(r.errors)}</td>
        <td class="num">${num(r.throughput_tps, 1)}</td><td class="num">${num(r.tokens_per_second, 1)}</td>
        <td class="num">${ms(r.p50_latency_ms)}</td><td class="num">${ms(r.p95_latency_ms)}</td>
        <td class="num">${ms(r.p99_latency_ms)}</td><td class="num">${ms(r.p50_ttft_ms)}</td>
        <td>${(r.nodes || []).map(esc).join(", ")}</td><td><span class="pill ${esc(r.status)}" title="${esc(r.error)}">${esc(r.status)}</span></td></tr>`).join("")
    : '<tr><td colspan="14" class="empty">No runs yet.</td></tr>';
}

async function refresh() {
  try {
    const data = await api("/dashboard/api/benchmarks");
    renderCurrent(data.current);
    renderHistory(data.history);
    const running = data.current && data.current.status === "running";
    root.querySelector("form button.primary").disabled = Boolean(running);
    clearTimeout(timer);
    if (running) timer = setTimeout(refresh, 1000);
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

async function start(event) {
  event.preventDefault();
  const form = event.target;
  const model = form.other.value.trim() || form.model.value; // what was typed wins
  if (!model) { toast("Choose a model", true); return; }
  const body = {
    model,
    workload: form.workload.value,
    duration_s: Number(form.duration.value),
    concurrency: Number(form.concurrency.value),
    num_predict: Number(form.num_predict.value),
    max_error_share: Number(form.max_errors.value) / 100,
  };
  try {
    await api("/dashboard/api/benchmarks", { method: "POST", body, admin: true });
    refresh();
  } catch (error) {
    failed(error);
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<form class="panel"><h3>Run a benchmark</h3><div class="row">
        <label class="field">workload<select name="workload"><option value="chat">chat (text generation)</option>
          <option value="embed">embeddings</option></select></label>
        <label class="field">model<select name="model"></select></label>
        <label class="field">or type a model<input name="other" placeholder="name:tag" size="16"></label>
        <label class="field">duration (s)<input name="duration" type="number" min="1" max="300" value="10" size="5"></label>
        <label class="field">concurrency<input name="concurrency" type="number" min="1" max="32" value="2" size="4"></label>
        <label class="field">tokens per reply<input name="num_predict" type="number" min="1" max="2048" value="64" size="5"></label>
        <label class="field">stop at errors (%)<input name="max_errors" type="number" min="0" max="100" value="20" size="4"></label>
        <button class="primary">Run</button></div>
        <p class="muted small">Requests go through this router as the admin, tagged <code>source:dashboard-bench</code>
        and <code>bench:&lt;run&gt;</code>; Health and Trends leave them out of their rates. A run stops at the first
        client error (4xx) and when the failed share reaches the limit; at most 300 s and 32 at once.</p></form>
      <div class="panel current"></div>
      <div class="panel table-scroll"><h3>History</h3><table><thead><tr><th>started</th><th>model</th>
        <th class="num">conc.</th><th class="num">duration</th><th class="num">requests</th><th class="num">failed</th>
        <th class="num">fleet tokens/s</th><th class="num">tokens/s per req.</th><th class="num">p50</th>
        <th class="num">p95</th><th class="num">p99</th><th class="num">p50 TTFT</th><th>nodes</th><th>status</th>
        </tr></thead><tbody></tbody></table></div>`;
    el.querySelector("form").addEventListener("submit", start);
    el.querySelector("select[name=workload]").addEventListener("change", modelOptions);
    el.querySelector(".current").addEventListener("click", async (event) => {
      if (!event.target.closest(".cancel")) return;
      try { await api("/dashboard/api/benchmarks/cancel", { method: "POST", admin: true }); refresh(); } catch (error) { failed(error); }
    });
    subscribe(() => { if (!el.hidden) modelOptions(); });
  },
  show() { modelOptions(); refresh(); },
  hide() { clearTimeout(timer); },
};
