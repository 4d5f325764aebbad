"""The Recommendations tab: which models to keep loaded where, explained in words.

Demand comes from the trace store (requests per model over the last day, and how often
each loaded cold); room comes from the fleet (each node's memory, what is on its disk and
what is loaded). Busiest models are placed first, each on the node that already holds it
loaded, else on the node with the most room that has it on disk; a model that takes most
of the traffic gets a second node. Loaded models nobody asked for are named as the memory
to win back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from herd import NodeView

__all__ = ["GB", "recommend"]

GB = 1_000_000_000
SECOND_COPY_SHARE = 0.4  # a model with this share of the traffic gets a second node
COLD_LOADS_TO_PIN = 3


def _gb(size: float) -> str:
    return f"{size / GB:.1f} GB"


def _capacity(view: NodeView) -> int:
    return view.vram_total or view.ram_total


def _footprint(view: NodeView, key: str) -> int:
    loaded = view.loaded.get(key)
    if loaded is not None:
        return loaded.size_vram or loaded.size
    entry = view.models.get(key)
    return int(entry.size * 1.1) if entry is not None else 0  # weights plus a context


def recommend(demand: Iterable[dict[str, Any]], views: list[NodeView]) -> dict[str, Any]:
    """Plan which models stay loaded where.

    Args:
        demand: Rows of ``analytics.models`` over the last day (model, requests,
            cold_loads, ...).
        views: The fleet's nodes.

    Returns:
        ``{"placements": [...], "idle": [...], "keep_alive": {...}, "window_hours": 24}``;
        each placement has the model, its share, the nodes and a ``reason`` in words.
    """
    usable = [v for v in views if v.status in ("online", "degraded") and not v.draining]
    room = {v.name: _capacity(v) for v in usable}
    rows = [row for row in demand if row.get("requests")]
    total = sum(int(row["requests"]) for row in rows) or 1
    placements: list[dict[str, Any]] = []
    keep_alive: dict[str, int] = {}
    wanted: set[tuple[str, str]] = set()
    for row in sorted(rows, key=lambda r: -int(r["requests"])):
        key = str(row["model"])
        share = int(row["requests"]) / total
        holders = [v for v in usable if v.has_model(key)]
        if not holders:
            placements.append(
                _placement(
                    row,
                    share,
                    [],
                    "missing",
                    f"No online node has {key} on disk: pull it, or fix the clients asking for it.",
                )
            )
            continue
        copies = 2 if share >= SECOND_COPY_SHARE and len(holders) > 1 else 1
        chosen: list[NodeView] = []
        for view in sorted(holders, key=lambda v: (key not in v.loaded, -room[v.name])):
            if len(chosen) == copies:
                break
            need = _footprint(view, key)
            if room[view.name] and need > room[view.name]:
                continue
            chosen.append(view)
            if room[view.name]:
                room[view.name] -= need
        if not chosen:
            biggest = max(_footprint(v, key) for v in holders)
            text = (
                f"{key} ({_gb(biggest)}) does not fit next to the busier models on any node "
                "that has it; it will load on demand. Put it on a node with more memory."
            )
            placements.append(_placement(row, share, [], "no-room", text))
            continue
        for view in chosen:
            wanted.add((view.name, key))
        action = "keep" if all(key in v.loaded for v in chosen) else "load"
        reason = _reason(key, share, chosen, room, action)
        cold = int(row.get("cold_loads") or 0)
        if cold >= COLD_LOADS_TO_PIN:
            keep_alive[key] = -1
            reason += (
                f" It loaded cold {cold} times in the last day: keep it resident with "
                f"routing.keep_alive {{{key}: -1}}."
            )
        placements.append(_placement(row, share, [v.name for v in chosen], action, reason))
    idle = []
    for view in usable:
        for key, model in view.loaded.items():
            if (view.name, key) in wanted or any(r["model"] == key for r in rows):
                continue
            size = model.size_vram or model.size
            idle.append(
                {
                    "model": key,
                    "node": view.name,
                    "size": size,
                    "reason": f"{key} is loaded on {view.name} but had no requests in the last "
                    f"day: letting it expire frees {_gb(size)}.",
                }
            )
    return {"window_hours": 24, "placements": placements, "idle": idle, "keep_alive": keep_alive}


def _placement(
    row: dict[str, Any], share: float, nodes: list[str], action: str, reason: str
) -> dict[str, Any]:
    return {
        "model": row["model"],
        "requests": int(row["requests"]),
        "share": round(share, 4),
        "cold_loads": int(row.get("cold_loads") or 0),
        "nodes": nodes,
        "action": action,
        "reason": reason,
    }


def _reason(
    key: str, share: float, chosen: list[NodeView], room: dict[str, int], action: str
) -> str:
    where = " and ".join(v.name for v in chosen)
    verb = "Keep" if action == "keep" else "Load"
    parts = [f"{verb} {key} on {where}: {share:.0%} of the last day's requests."]
    for view in chosen:
        size = _footprint(view, key)
        capacity = _capacity(view)
        if capacity:
            parts.append(
                f"On {view.name} it takes {_gb(size)} of {_gb(capacity)} "
                f"({_gb(max(0, room[view.name]))} left for the models below it)."
            )
        else:
            parts.append(
                f"{view.name} does not report its memory (run herd-node there to know whether "
                "it fits)."
            )
    if len(chosen) > 1:
        parts.append("It takes a large share of the traffic, so two nodes share it.")
    return " ".join(parts)
