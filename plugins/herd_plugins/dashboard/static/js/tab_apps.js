// Apps: usage per tag, a daily chart, and how to tag requests.
import { timeChart } from "./charts.js";
import { ago, api, copyButton, count, esc, failed, ms, num, pct, routerBase } from "./util.js";

let root = null;

function examples() {
  const base = routerBase;
  return [
    ["curl (Ollama API)", `curl ${base}/api/chat \\
  -H 'X-Herd-Tags: app:my-app, team:search' \\
  -d '{"model": "llama3.2:3b", "messages": [{"role": "user", "content": "Hello"}]}'`],
    ["OpenAI SDK (Python)", `from openai import OpenAI

client = OpenAI(base_url="${base}/v1", api_key="unused-or-your-herd-key")
reply = client.chat.completions.create(
    model="llama3.2:3b",
    messages=[{"role": "user", "content": "Hello"}],
    extra_headers={"X-Herd-Tags": "app:my-app"},      # or:
    extra_body={"metadata": {"tags": ["team:search"]}},
)`],
    ["curl (OpenAI API)", `curl ${base}/v1/chat/completions \\
  -H 'Content-Type: application/json' \\
  -d '{"model": "llama3.2:3b", "user": "alice",
       "metadata": {"tags": ["app:my-app"]},
       "messages": [{"role": "user", "content": "Hello"}]}'`],
  ];
}

async function load() {
  try {
    const data = await api("/dashboard/api/apps?days=7");
    const apps = data.apps;
    root.querySelector("tbody").innerHTML = apps.length
      ? apps.map((a) => `<tr data-app="${esc(a.app)}"><td><b>${esc(a.app)}</b></td>
          <td class="num">${num(a.requests)}</td>
          <td class="num">${num(a.prompt_tokens + a.completion_tokens)}</td>
          <td class="num">${ms(a.p50_latency_ms)}</td><td class="num">${ms(a.p95_latency_ms)}</td>
          <td class="num">${pct(a.error_rate)}</td><td>${ago(a.last_seen)}</td></tr>`).join("")
      : '<tr><td colspan="7" class="empty">No requests in the last 7 days.</td></tr>';
    const top = apps.slice(0, 6);
    timeChart(root.querySelector(".daily"), {
      title: "Requests per day", subtitle: "UTC days, today included", bars: true, integer: true,
      step: 86400, format: (v) => count(v, "request"),
      series: top.map((a) => ({ name: a.app, points: a.daily.map((d) => [d.t, d.requests]) })),
    });
    root.dataset.loaded = String(Date.now());
  } catch (error) {
    failed(error);
  }
}

export default {
  init(el) {
    root = el;
    el.innerHTML = `<div class="panel daily"></div>
      <div class="panel"><h3>Usage by app (tag), last 7 days</h3><table><thead><tr><th>app / tag</th>
        <th class="num">requests</th><th class="num">tokens</th><th class="num">p50 latency</th>
        <th class="num">p95 latency</th><th class="num">failed on a node</th><th>last seen</th></tr></thead>
        <tbody></tbody></table></div>
      <div class="panel howto"><h3>Tagging your requests</h3>
        <p class="muted">Send tags in an <code>X-Herd-Tags</code> header (comma-separated) or in the
        body's <code>metadata.tags</code>. OpenAI's <code>user</code> becomes <code>user:&lt;name&gt;</code>
        and an API key's name <code>key:&lt;name&gt;</code>. A request counts once under each of its tags.</p></div>`;
    const howto = el.querySelector(".howto");
    for (const [title, code] of examples()) {
      const head = document.createElement("div");
      head.className = "row";
      head.innerHTML = `<b class="small">${esc(title)}</b><span class="spacer"></span>`;
      const pre = document.createElement("pre");
      pre.textContent = code;
      head.append(copyButton(pre));
      howto.append(head, pre);
    }
  },
  show() { load(); },
};
