// The live fleet snapshot from /dashboard/events (Server-Sent Events over fetch, so the
// API key can go in a header), reconnecting by itself.
import { authHeaders, dashboardUrl } from "./util.js";

const listeners = new Set();
export const live = { fleet: null, connected: false, received: 0 };

export function subscribe(fn) {
  listeners.add(fn);
  if (live.fleet) fn(live.fleet);
  return () => listeners.delete(fn);
}

function publish(fleet) {
  live.fleet = fleet;
  live.received++;
  for (const fn of listeners) {
    try { fn(fleet); } catch (error) { console.warn("dashboard listener failed", error); }
  }
}

function setConnected(on, why = "reconnecting") {
  live.connected = on;
  const badge = document.getElementById("live");
  badge.classList.toggle("on", on);
  badge.textContent = on ? "live" : why;
  // Refused for want of a key: say so where it is read, not only in the small badge.
  document.getElementById("needs-key").hidden = on || !why.startsWith("needs");
}

function dispatch(block) {
  let event = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trimStart();
  }
  if (event === "fleet" && data) publish(JSON.parse(data));
}

export async function connect() {
  for (;;) {
    try {
      const response = await fetch(dashboardUrl("/dashboard/events"), {
        headers: { ...authHeaders(), Accept: "text/event-stream" }, cache: "no-store",
      });
      if (!response.ok) {
        const why = response.status === 401 ? "needs an API key (Settings → Access)" : `HTTP ${response.status}`;
        throw new Error(why);
      }
      setConnected(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = (buffer + value).replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      setConnected(false, error.message.startsWith("needs") ? error.message : "reconnecting");
      await new Promise((resolve) => setTimeout(resolve, 2000));
      continue;
    }
    // The server ends each stream after a while: reconnect at once.
  }
}
