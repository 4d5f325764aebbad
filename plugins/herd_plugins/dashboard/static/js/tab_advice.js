// Recommendations: which models to keep loaded where, explained in words.
import { api, bytes, copyButton, esc, failed, num, pct } from "./util.js";

let root = null;

function yaml(keepAlive) {
  const lines = Object.keys(keepAlive).map((model) => `    "${model}": -1`);
  return lines.length ? `routing:\n  keep_alive:\n${lines.join("\n")}` : "";
}

async function load() {
  try {
    const data = await api("/dashboard/api/recommendations");
    root.querySelector("tbody").innerHTML = data.placements.length
      ? data.placements.map((p) => `<tr data-model="${esc(p.model)}"><td><b>${esc(p.model)}</b></td>
          <td class="num">${num(p.requests)}</td><td class="num">${pct(p.share)}</td>
          <td><span class="pill ${esc(p.action)}">${esc(p.action)}</span></td>
          <td>${p.nodes.map(esc).join(", ") || "—"}</td><td>${esc(p.reason)}</td></tr>`).join("")
      : '<tr><td colspan="6" class="empty">No requests in the last day: nothing to recommend yet.</td></tr>';
    root.querySelector(".idle").innerHTML = data.idle.length
      ? `<h3>Memory to win back</h3><ul>${data.idle.map((i) =>
          `<li>${esc(i.reason)} <span class="muted small">(${bytes(i.size)})</span></li>`).join("")}</ul>`
      : "<h3>Memory to win back</h3><p class=\"muted\">Every loaded model was used in the last day.</p>";
    const snippet = yaml(data.keep_alive);
    const box = root.querySelector(".snippet");
    box.hidden = !snippet;
    if (snippet) {
      box.innerHTML = "<h3>Keep the busiest cold-loading models resident</h3>";
      const pre = document.createElement("pre");
      pre.textContent = snippet;
      box.append(copyButton(pre), pre);
    }
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<p class="muted">From the last day's requests per model and each node's memory:
        the busiest models first, each where it is already loaded or where it fits best.</p>
      <div class="panel"><table><thead><tr><th>model</th><th class="num">requests</th><th class="num">share</th>
        <th>action</th><th>nodes</th><th>why</th></tr></thead><tbody></tbody></table></div>
      <div class="panel idle"></div><div class="panel snippet" hidden></div>`;
  },
  show() { load(); },
};
