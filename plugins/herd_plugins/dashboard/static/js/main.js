// The page: tab switching by URL hash, and the live feed every tab can listen to.
import { connect } from "./live.js";
import overview from "./tab_overview.js";
import requests from "./tab_requests.js";
import trends from "./tab_trends.js";
import models from "./tab_models.js";
import apps from "./tab_apps.js";
import benchmarks from "./tab_bench.js";
import health from "./tab_health.js";
import recommendations from "./tab_advice.js";
import settings from "./tab_settings.js";
import { api, tracesOff } from "./util.js";

const TABS = { overview, requests, trends, models, apps, benchmarks, health, recommendations, settings };
const started = new Set();
let current = "";

function show(name) {
  if (!TABS[name]) name = "overview";
  if (name === current) return;
  if (current) {
    document.getElementById(`tab-${current}`).hidden = true;
    TABS[current].hide?.();
  }
  current = name;
  for (const link of document.querySelectorAll("#tabs a")) {
    const selected = link.dataset.tab === name;
    link.setAttribute("aria-selected", String(selected));
    // on a narrow screen the tab bar scrolls: keep the chosen tab in view
    if (selected) link.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  const el = document.getElementById(`tab-${name}`);
  el.hidden = false;
  if (!started.has(name)) {
    started.add(name);
    TABS[name].init(el);
  }
  TABS[name].show?.(el);
}

window.addEventListener("hashchange", () => show(location.hash.slice(1)));
connect();
// Whether traces are on decides what the tabs ask for: known before the first one shows.
api("/dashboard/api/store").then((store) => tracesOff(!store.traces)).catch(() => {})
  .finally(() => show(location.hash.slice(1) || "overview"));
