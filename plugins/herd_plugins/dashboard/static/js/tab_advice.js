// Recommendations: only what calls for an action, each with its evidence and the action
// (one click, after a confirmation) or the YAML to paste.
import { api, copyButton, esc, failed } from "./util.js";
import { modelAction } from "./tab_models.js";

const LABELS = {
  pull: "missing model", spread: "busy on one node", pin: "cold loads", unload: "idle in memory", "no-room": "does not fit",
};
let root = null;

function render(data) {
  const list = root.querySelector(".actions");
  if (!data.actions.length) {
    list.innerHTML = `<p class="all-well">Nothing to change: ${data.models_seen
      ? `the ${data.models_seen} models used in the last day are where they should be, and nothing idle holds memory.`
      : "no requests in the last day yet, and nothing idle holds memory."}</p>`;
    return;
  }
  list.innerHTML = "";
  for (const a of data.actions) {
    const item = document.createElement("div");
    item.className = "action";
    item.dataset.kind = a.kind;
    item.dataset.model = a.model;
    const oneClick = (a.kind === "pull" || a.kind === "spread" || a.kind === "unload") && a.node;
    item.innerHTML = `<div class="row"><span class="pill ${a.kind === "unload" || a.kind === "pin" ? "warn" : "bad"}">${esc(LABELS[a.kind] || a.kind)}</span>
        <b>${esc(a.title)}</b><span class="spacer"></span>
        ${oneClick ? `<button class="small primary do">${a.kind === "unload" ? "Unload" : "Pull"} on ${esc(a.node)}</button>` : ""}</div>
      <ul>${a.evidence.map((e) => `<li>${esc(e)}</li>`).join("")}</ul>
      ${a.note ? `<p class="muted small">${esc(a.note)}</p>` : ""}`;
    if (a.yaml) {
      const pre = document.createElement("pre");
      pre.textContent = a.yaml;
      item.append(copyButton(pre), pre);
    }
    item.querySelector(".do")?.addEventListener("click", async () => {
      if (await modelAction(a.kind === "unload" ? "unload" : "pull", a.node, a.model)) load();
    });
    list.append(item);
  }
}

async function load() {
  try {
    render(await api("/dashboard/api/recommendations"));
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<p class="muted">From the last day's requests per model and each node's memory: only what
        should change, with the facts behind it. Rows clear themselves once done.</p>
      <div class="panel actions"></div>`;
  },
  show() { load(); },
};
