// Benchmarks: run a bounded load test from the page, watch it, compare the history.
import { live, subscribe } from "./live.js";
import { api, esc, failed, ms, num, time, toast } from "./util.js";

let root = null;
let timer = 0;

function modelOptions() {
  const fleet = live.fleet;
  const select = root.querySelector("select[name=model]");
  if (!fleet) return;
  const names = [...new Set(fleet.nodes.flatMap((n) => n.loaded.map((m) => m.name)))].sort();
  const key = names.join(",");
  if (select.dataset.key === key) return;
  const chosen = select.value;
  select.innerHTML = names.map((n) => `<option${n === chosen ? " selected" : ""}>${esc(n)}</option>`).join("") +
    '<option value="">other…</option>';
  select.dataset.key = key;
}

function renderCurrent(run) {
  const box = root.querySelector(".current");
  if (!run) {
    box.innerHTML = '<p class="muted">No benchmark has run since the router started.</p>';
    return;
  }
  const share = run.status === "running" ? run.progress || 0 : 1;
  box.innerHTML = `<div class="row"><b>${esc(run.model)}</b><span class="pill ${esc(run.status)}">${esc(run.status)}</span>
      <span class="muted small">${num(run.concurrency)} at once for ${num(run.duration_s)} s</span><span class="spacer"></span>
      <span class="small">${num(run.requests)} requests, ${num(run.errors)} errors</span>
      ${run.status === "running" ? '<button class="small cancel">Cancel</button>' : ""}</div>
    <div class="progress" role="progressbar" aria-valuenow="${Math.round(share * 100)}" aria-valuemin="0" aria-valuemax="100">
      <div style="width:${(share * 100).toFixed(1)}%"></div></div>
    ${run.error ? `<p class="small" style="color:var(--bad)">${esc(run.error)}</p>` : ""}`;
}

function renderHistory(history) {
  root.querySelector("tbody").innerHTML = history.length
    ? history.map((r) => `<tr data-run="${esc(r.id)}"><td>${time(r.started_at)}</td><td>${esc(r.model)}</td>
        <td class="num">${num(r.concurrency)}</td><td class="num">${num(r.duration_s)} s</td>
        <td class="num">${num(r.requests)}</td><td class="num">${num(r.errors)}</td>
        <td class="num">${num(r.throughput_tps, 1)}</td><td class="num">${num(r.tokens_per_second, 1)}</td>
        <td class="num">${ms(r.p50_latency_ms)}</td><td class="num">${ms(r.p95_latency_ms)}</td>
        <td class="num">${ms(r.p99_latency_ms)}</td><td class="num">${ms(r.p50_ttft_ms)}</td>
        <td>${(r.nodes || []).map(esc).join(", ")}</td><td><span class="pill ${esc(r.status)}">${esc(r.status)}</span></td></tr>`).join("")
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
  const model = form.model.value || form.other.value.trim();
  if (!model) { toast("Choose a model", true); return; }
  const body = {
    model,
    duration_s: Number(form.duration.value),
    concurrency: Number(form.concurrency.value),
    num_predict: Number(form.num_predict.value),
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
        <label class="field">model<select name="model"></select></label>
        <label class="field">or another model<input name="other" placeholder="name:tag" size="16"></label>
        <label class="field">duration (s)<input name="duration" type="number" min="1" max="300" value="10" size="5"></label>
        <label class="field">concurrency<input name="concurrency" type="number" min="1" max="32" value="2" size="4"></label>
        <label class="field">tokens per reply<input name="num_predict" type="number" min="1" max="2048" value="64" size="5"></label>
        <button class="primary">Run</button></div>
        <p class="muted small">Streaming chats through this router, tagged <code>benchmark</code>; at most 300 s
        and 32 at once. Results are kept in the trace store.</p></form>
      <div class="panel current"></div>
      <div class="panel"><h3>History</h3><table><thead><tr><th>started</th><th>model</th>
        <th class="num">conc.</th><th class="num">duration</th><th class="num">requests</th><th class="num">errors</th>
        <th class="num">fleet tokens/s</th><th class="num">tokens/s per req.</th><th class="num">p50</th>
        <th class="num">p95</th><th class="num">p99</th><th class="num">p50 TTFT</th><th>nodes</th><th>status</th>
        </tr></thead><tbody></tbody></table></div>`;
    el.querySelector("form").addEventListener("submit", start);
    el.querySelector(".current").addEventListener("click", async (event) => {
      if (!event.target.closest(".cancel")) return;
      try { await api("/dashboard/api/benchmarks/cancel", { method: "POST", admin: true }); refresh(); } catch (error) { failed(error); }
    });
    subscribe(() => { if (!el.hidden) modelOptions(); });
  },
  show() { modelOptions(); refresh(); },
  hide() { clearTimeout(timer); },
};
