// Small helpers every tab shares: the API client, keys, formatting, toasts.

const KEYS = { api: "herd.apiKey", admin: "herd.adminKey" };

export const keys = {
  get api() { return localStorage.getItem(KEYS.api) || ""; },
  get admin() { return localStorage.getItem(KEYS.admin) || ""; },
  set(which, value) {
    if (value) localStorage.setItem(KEYS[which], value);
    else localStorage.removeItem(KEYS[which]);
  },
};

// Reads send the client API key (when the router has auth.api_keys); changes send the
// admin key (auth.admin_key).
export function authHeaders(admin = false) {
  const key = admin ? keys.admin || keys.api : keys.api;
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Where the dashboard is: this script is at <dashboard>/static/js/util.js. Behind a proxy
// that serves herd under a prefix (the page at /herd/dashboard), every address the page
// asks for keeps the prefix: the routes name their paths as herd does (/dashboard/api/...),
// and dashboardUrl puts them under the page's own dashboard.
const DASHBOARD = new URL("../../", import.meta.url);
export const dashboardUrl = (path) => new URL(path.replace(/^\/dashboard\//, ""), DASHBOARD).href;
// The router's own address (what clients are given), the dashboard's parent.
export const routerBase = new URL("../", DASHBOARD).href.replace(/\/$/, "");

// Set at start from /dashboard/api/store: with the trace store off, the trace questions
// are not even asked (each would be a 503 and a console error).
export const store = { tracesOff: false };
const TRACE_PATHS = /^\/dashboard\/api\/(overview|trends|models|tags|apps|traces|series)\b/;

export async function api(path, { method = "GET", body, admin = false } = {}) {
  if (store.tracesOff && TRACE_PATHS.test(path)) {
    const error = new Error("503: traces are off");
    error.status = 503;
    error.tracesOff = true;
    throw error;
  }
  const headers = authHeaders(admin);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(dashboardUrl(path), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const message = (data && (data.error?.message || data.error || data.detail)) || text;
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    error.tracesOff = response.status === 503 && /traces are off/.test(String(message));
    throw error;
  }
  return data;
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);

export function bytes(n) {
  if (!n) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function ms(v) {
  if (v === null || v === undefined) return "—";
  return v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}

export function num(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  return Number(v).toLocaleString(undefined, { maximumFractionDigits: digits });
}

// Sizes: GB from a gigabyte up, else MB (a 46 MB model is never "0.0 GB").
export function size(n) {
  if (!n) return "—";
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${Math.max(1, Math.round(n / 1e6))} MB`;
}

export const tps = (v) => (v === null || v === undefined ? "—" : `${num(v, 1)} tokens/s`);
export const count = (v, unit) => `${num(v)} ${unit}${Number(v) === 1 ? "" : "s"}`;

export const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);

export function seconds(s) {
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} m`;
}

export function ago(t) {
  if (!t) return "never";
  const s = Date.now() / 1000 - t;
  return s < 5 ? "just now" : `${seconds(s).replace(/ \d+ s$/, "")} ago`;
}

export const time = (t) =>
  new Date(t * 1000).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });

export const tags = (list) => (list || []).map((t) => `<span class="tag">${esc(t)}</span>`).join("");

let toastTimer = 0;
export function toast(message, error = false) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = error ? "error" : "";
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, error ? 6000 : 2500);
}

// Strict CSP allows no style attributes in markup: widths and colours travel as data-w
// (percent) and data-bg attributes and are applied here through the CSSOM.
export function paint(root) {
  for (const el of root.querySelectorAll("[data-w]")) el.style.width = `${Number(el.dataset.w).toFixed(1)}%`;
  for (const el of root.querySelectorAll("[data-bg]")) el.style.background = el.dataset.bg;
}

// The page-wide notice when the trace store is off (the duckdb sink is disabled).
export function tracesOff(on) {
  store.tracesOff = on;
  document.getElementById("traces-off").hidden = !on;
}

// A failed change says why; a 401/403 says where the key goes.
export function failed(error) {
  if (error.tracesOff) { tracesOff(true); return; }
  const hint = error.status === 401 || error.status === 403
    ? " (enter the admin key under Settings → Access)" : "";
  toast(`${error.message}${hint}`, true);
}

export function copyButton(pre) {
  const button = document.createElement("button");
  button.className = "small";
  button.textContent = "Copy";
  button.addEventListener("click", async () => {
    const text = pre.textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(pre);
      const selection = getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
    }
    toast("Copied");
  });
  return button;
}

// Asks before an action: a modal dialog (not window.confirm, which blocks the page).
export function confirmAction({ title, body, confirm = "Confirm", danger = false }) {
  const dialog = document.getElementById("confirm");
  dialog.querySelector("h3").textContent = title;
  dialog.querySelector("p").textContent = body;
  const ok = dialog.querySelector("button.ok");
  ok.textContent = confirm;
  ok.classList.toggle("danger", danger);
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// The time ranges a strip offers; a custom one reads two datetime-local inputs.
export const RANGES = [["hour", "Last hour", 3600], ["day", "Last day", 86400], ["week", "Last week", 604800]];

export function rangeControl(value, { any = false } = {}) {
  const options = any ? [["any", "Any time", 0], ...RANGES] : RANGES;
  return `<div class="seg range" data-seg="range">${[...options, ["custom", "Custom…", 0]].map(([v, label]) =>
    `<button type="button" data-value="${v}" aria-pressed="${v === value}">${label}</button>`).join("")}</div>
    <span class="custom-range" hidden><input type="datetime-local" name="since" aria-label="from">
    <input type="datetime-local" name="until" aria-label="to"><button type="button" class="small apply-range">Apply</button></span>`;
}

// {since, until} in Unix seconds for the chosen range (custom: from the inputs), or {}.
export function rangeOf(root, value) {
  const found = RANGES.find(([v]) => v === value);
  if (found) {
    const now = Date.now() / 1000;
    return { since: now - found[2], until: now };
  }
  if (value === "custom") {
    const since = Date.parse(root.querySelector("input[name=since]").value) / 1000;
    const until = Date.parse(root.querySelector("input[name=until]").value) / 1000;
    if (since > 0 && until > since) return { since, until };
  }
  return {};
}
