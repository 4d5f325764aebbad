// The page: tab switching by URL hash, and the live feed every tab can listen to.
import { connect } from "./live.js";
import overview from "./tab_overview.js";
import trends from "./tab_trends.js";
import models from "./tab_models.js";
import apps from "./tab_apps.js";
import benchmarks from "./tab_bench.js";
import health from "./tab_health.js";
import recommendations from "./tab_advice.js";
import settings from "./tab_settings.js";

const TABS = { overview, trends, models, apps, benchmarks, health, recommendations, settings };
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
    link.setAttribute("aria-selected", String(link.dataset.tab === name));
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
show(location.hash.slice(1) || "overview");
connect();
