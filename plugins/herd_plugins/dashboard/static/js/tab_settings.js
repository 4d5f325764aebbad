// Settings: live toggles and signal weights (take effect at once, persist), access keys,
// and the effective configuration with its secrets redacted.
import { api, esc, failed, keys, time, toast } from "./util.js";

let root = null;
let current = null;

function toggles(data) {
  return Object.entries(data.live).map(([key, value]) => {
    const what = `<span class="what"><b>${esc(key)}</b><span class="muted small">${esc(data.descriptions[key] || "")}</span></span>`;
    const choices = data.choices[key];
    if (choices) {
      return `<label class="switch">${what}<select data-key="${esc(key)}">${choices.map((c) =>
        `<option${c === value ? " selected" : ""}>${esc(c)}</option>`).join("")}</select></label>`;
    }
    return `<label class="switch">${what}<input type="checkbox" data-key="${esc(key)}"${value ? " checked" : ""}></label>`;
  }).join("");
}

function weights(data) {
  return Object.entries(data.weights).map(([name, weight]) => `<label class="field">${esc(name)}
    <input type="number" min="0" max="1000" step="0.1" data-weight="${esc(name)}" value="${weight}" size="6"></label>`).join("");
}

function overrides(data) {
  const entries = Object.entries(data.overrides);
  if (!entries.length) return '<p class="muted">None: every value comes from the YAML file, environment or defaults.</p>';
  return `<table><thead><tr><th>key</th><th>value</th><th>configured</th><th></th></tr></thead><tbody>${entries.map(
    ([key, o]) => `<tr data-override="${esc(key)}"><td class="mono">${esc(key)}</td><td>${esc(JSON.stringify(o.value))}</td>
      <td class="muted">${esc(JSON.stringify(o.configured))}</td>
      <td><button class="small" data-reset="${esc(key)}">Reset</button></td></tr>`).join("")}</tbody></table>`;
}

function render(data) {
  current = data;
  root.querySelector(".toggles").innerHTML = toggles(data);
  root.querySelector(".weights").innerHTML = weights(data);
  root.querySelector(".overrides").innerHTML = overrides(data);
  root.querySelector(".persist").textContent = data.persisted_to
    ? `Saved in ${data.persisted_to}${data.updated_at ? `, last changed ${time(data.updated_at)}` : ""}; applied again at start-up.`
    : "data_dir is empty: changes last until the router stops.";
  root.querySelector(".effective").textContent = JSON.stringify(data.effective, null, 2);
  root.dataset.loaded = String(Date.now());
}

async function load() {
  try { render(await api("/dashboard/api/settings")); } catch (error) { failed(error); }
}

async function change(patch, what) {
  try {
    render(await api("/dashboard/api/settings", { method: "POST", body: patch, admin: true }));
    toast(`${what}: applied`);
  } catch (error) {
    failed(error);
    if (current) render(current); // put the controls back as they are on the router
  }
}

function onChange(event) {
  const input = event.target;
  const key = input.dataset.key;
  if (!key) return;
  const value = input.type === "checkbox" ? input.checked : input.value;
  change({ [key]: value }, `${key} = ${value}`);
}

function applyWeights() {
  const patch = {};
  for (const input of root.querySelectorAll("[data-weight]")) {
    const value = Number(input.value);
    if (value !== current.weights[input.dataset.weight]) {
      patch[`routing.signals.${input.dataset.weight}.weight`] = value;
    }
  }
  if (Object.keys(patch).length) change(patch, "signal weights");
  else toast("No weight changed");
}

function saveKeys(event) {
  event.preventDefault();
  keys.set("api", event.target.api.value.trim());
  keys.set("admin", event.target.admin.value.trim());
  toast("Keys saved in this browser");
  load(); // what a missing key kept from this tab
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<div class="grid wide">
      <div class="panel"><h3>Live switches</h3><div class="toggles"></div>
        <p class="muted small persist"></p></div>
      <div class="panel"><h3>Signal weights</h3><p class="muted small">How much each signal counts when
        nodes are ranked; 0 turns a signal off.</p><div class="row weights"></div>
        <p><button class="primary apply-weights">Apply weights</button></p></div>
      <div class="panel"><h3>Overrides made here</h3><div class="overrides"></div></div>
      <form class="panel access"><h3>Access</h3>
        <p class="muted small">Kept in this browser only. The API key is for routers with
        <code>auth.api_keys</code>; the admin key (<code>auth.admin_key</code>) allows changes.</p>
        <div class="row"><label class="field">API key<input name="api" type="password" autocomplete="off"></label>
        <label class="field">Admin key<input name="admin" type="password" autocomplete="off"></label>
        <button>Save</button></div></form></div>
      <details class="panel"><summary><b>Effective configuration</b>
        <span class="muted small">(what the router runs with now; secrets redacted)</span></summary>
        <pre class="effective"></pre></details>`;
    el.querySelector(".toggles").addEventListener("change", onChange);
    el.querySelector(".apply-weights").addEventListener("click", applyWeights);
    el.querySelector(".overrides").addEventListener("click", (event) => {
      const key = event.target.dataset?.reset;
      if (key) change({ [key]: null }, `${key} reset`);
    });
    const form = el.querySelector("form.access");
    form.api.value = keys.api;
    form.admin.value = keys.admin;
    form.addEventListener("submit", saveKeys);
  },
  show() { load(); },
};
