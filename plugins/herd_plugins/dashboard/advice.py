"""The Recommendations tab: only what calls for an action, each with its evidence.

Demand comes from the trace store (requests per model over the last day, how often each
loaded cold); room from the fleet (each node's memory, what is on its disk and loaded).
A row is made only when something should change, and says what to do in one click
(``pull`` or ``unload`` on a node) or in YAML to paste:

- ``pull``: clients ask for a model no online node has;
- ``spread``: one model takes most of the traffic but only one node has it, while
  another has room for it;
- ``pin``: a busy model keeps loading cold: keep it resident (``routing.keep_alive``);
- ``unload``: a model sits in memory with no request all day;
- ``no-room``: a model asked for fits on no node that has it.

A fleet that needs none of these gets an empty list, and the page says all is well.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from herd import NodeView

__all__ = ["recommend", "size_text"]

SECOND_COPY_SHARE = 0.4  # a model with this share of the traffic deserves a second node
COLD_LOADS_TO_PIN = 3
MIN_REQUESTS = 5  # below this a model's traffic says nothing


def size_text(size: float) -> str:
    """Bytes in GB from 1 GB, else MB (a 46 MB model is "46 MB", not "0.0 GB")."""
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    return f"{max(size, 0) / 1e6:.0f} MB"


def _capacity(view: NodeView) -> int:
    return view.vram_total or view.ram_total


def _free(view: NodeView) -> int | None:
    """Bytes of memory still free on a node, or None when it does not say."""
    if view.vram_total:
        return max(0, view.vram_total - view.vram_used)
    if view.ram_total:
        return view.ram_available
    return None


def _size_of(views: Iterable[NodeView], key: str) -> int:
    for view in views:
        if key in view.loaded:
            return view.loaded[key].size_vram or view.loaded[key].size
        if key in view.models:
            return int(view.models[key].size * 1.1)  # weights plus a context
    return 0


def recommend(demand: Iterable[dict[str, Any]], views: list[NodeView]) -> dict[str, Any]:
    """What to change, busiest models first.

    Args:
        demand: Rows of ``analytics.models`` over the last day (model, requests, errors,
            cold_loads, avg_cold_load_ms, ...).
        views: The fleet's nodes.

    Returns:
        ``{"window_hours": 24, "actions": [...], "models_seen": n}``; each action has
        ``kind``, ``model``, ``node`` (one-click target or ""), ``title``, ``evidence``
        (a list of facts) and ``yaml`` (a snippet to paste, or "").
    """
    usable = [v for v in views if v.status in ("online", "degraded") and not v.draining]
    rows = [row for row in demand if int(row.get("requests") or 0)]
    total = sum(int(row["requests"]) for row in rows) or 1
    actions: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: -int(r["requests"])):
        key = str(row["model"])
        requests = int(row["requests"])
        share = requests / total
        holders = [v for v in usable if v.has_model(key)]
        facts = [f"{requests} requests in the last day ({share:.0%} of all)"]
        if not holders:
            if requests >= MIN_REQUESTS:
                actions.append(_missing(key, facts, row, usable))
            continue
        need = _size_of(holders, key)
        fits = [v for v in holders if not _capacity(v) or need <= _capacity(v)]
        if not fits:
            biggest = max(_capacity(v) for v in holders)
            facts.append(
                f"needs about {size_text(need)}; the largest node that has it has "
                f"{size_text(biggest)}"
            )
            actions.append(
                _action(
                    "no-room",
                    key,
                    "",
                    f"{key} fits on no node that has it",
                    facts,
                    "Pull it onto a node with more memory.",
                )
            )
            continue
        cold = int(row.get("cold_loads") or 0)
        if cold >= COLD_LOADS_TO_PIN and requests >= MIN_REQUESTS:
            took = row.get("avg_cold_load_ms")
            facts_pin = [
                *facts,
                f"loaded cold {cold} times"
                + (f", {took / 1000:.1f} s each on average" if took else ""),
            ]
            yaml = f'routing:\n  keep_alive:\n    "{key}": -1'
            actions.append(_action("pin", key, "", f"Keep {key} loaded", facts_pin, "", yaml))
        if share >= SECOND_COPY_SHARE and requests >= MIN_REQUESTS and len(holders) == 1:
            target = _roomiest(
                [v for v in usable if not v.has_model(key) and v.name != holders[0].name], need
            )
            if target is not None:
                facts_spread = [
                    *facts,
                    f"only {holders[0].name} has it",
                    f"{target.name} has {size_text(_free(target) or 0)} free",
                ]
                actions.append(
                    _action(
                        "spread",
                        key,
                        target.name,
                        f"Pull {key} onto {target.name} as well",
                        facts_spread,
                        "A second node shares its load and covers a failure.",
                    )
                )
    wanted = {str(row["model"]) for row in rows}
    for view in usable:
        for key, model in view.loaded.items():
            if key in wanted:
                continue
            size = model.size_vram or model.size
            facts = ["no request in the last day", f"holds {size_text(size)} on {view.name}"]
            actions.append(
                _action(
                    "unload",
                    key,
                    view.name,
                    f"Unload {key} from {view.name}",
                    facts,
                    "Frees its memory for the models in use.",
                )
            )
    return {"window_hours": 24, "actions": actions, "models_seen": len(rows)}


def _missing(
    key: str, facts: list[str], row: dict[str, Any], usable: list[NodeView]
) -> dict[str, Any]:
    errors = int(row.get("errors") or 0) + int(row.get("rejected") or 0)
    if errors:
        facts = [*facts, f"{errors} of them failed or were refused"]
    facts.append("no online node has it on disk")
    target = _roomiest(usable, 0)
    title = f"Pull {key}" + (f" onto {target.name}" if target else "")
    return _action(
        "pull",
        key,
        target.name if target else "",
        title,
        facts,
        "Or fix the clients that ask for it, or add an alias (model_aliases).",
    )


def _roomiest(views: list[NodeView], need: int) -> NodeView | None:
    """The node with the most free memory that fits ``need`` bytes (unknown counts as 0)."""
    fitting = [v for v in views if (_free(v) or 0) >= need]
    return max(fitting, key=lambda v: _free(v) or 0, default=None)


def _action(
    kind: str, model: str, node: str, title: str, evidence: list[str], note: str, yaml: str = ""
) -> dict[str, Any]:
    return {
        "kind": kind,
        "model": model,
        "node": node,
        "title": title,
        "evidence": evidence,
        "note": note,
        "yaml": yaml,
    }
