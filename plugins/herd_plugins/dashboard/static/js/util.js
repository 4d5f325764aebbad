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

export async function api(path, { method = "GET", body, admin = false } = {}) {
  const headers = authHeaders(admin);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const message = (data && (data.error?.message || data.error || data.detail)) || text;
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
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

// A failed change says why; a 401/403 says where the key goes.
export function failed(error) {
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
