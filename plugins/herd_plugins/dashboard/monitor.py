"""The dashboard's eye on the fleet: one snapshot a second, and what changed between them.

One task per app samples the fleet and the queues every second through the public
:class:`herd.router.Router` (reading memory only: no I/O), keeps the snapshot the live
overview streams, and remembers for an hour the events the Health tab judges: nodes
going up and down, models loading and unloading, a model reloaded with another context
length, the holding area filling up.
Every SSE client gets the same encoded snapshot, so a dozen open dashboards cost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgspec
from herd import NodeView

__all__ = ["FleetEvent", "FleetMonitor"]

log = logging.getLogger("herd.dashboard")

SAMPLE_INTERVAL = 1.0
HISTORY_SECONDS = 3600.0
MAX_EVENTS = 5000
MAX_QUEUE_ITEMS = 500
_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class FleetEvent:
    """Something that changed between two samples (Unix time, node, kind, detail)."""

    at: float
    node: str
    kind: str  # status, load, unload, context
    model: str = ""
    detail: str = ""


class FleetMonitor:
    """Samples one router's fleet every second; see the module docstring."""

    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        self.interval = interval
        self.router: Any = None
        self.pulls: Any = None  # the actions' PullTracker, shown in every snapshot
        self.snapshot: dict[str, Any] = {"t": 0.0, "summary": {}, "nodes": [], "queue": []}
        self.encoded = _encode(self.snapshot)
        self.events: deque[FleetEvent] = deque(maxlen=MAX_EVENTS)
        self.held_peak: deque[tuple[float, int]] = deque(maxlen=600)
        self._last: dict[str, tuple[str, dict[str, int]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.ticks = 0
        self.deepest = ("", 0)

    @property
    def running(self) -> bool:
        return self._task is not None

    # -- lifecycle (Litestar on_startup / on_shutdown) -----------------------------------

    async def start(self, app: Any) -> None:
        self.router = app.state.router
        self._changed = asyncio.Event()
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, app: Any = None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._changed.set()  # let waiting streams end

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.sample()
            except Exception:
                log.exception("dashboard: sampling the fleet failed")

    async def next_snapshot(self, seen: int, timeout: float) -> int:
        """Wait until a sample newer than tick ``seen`` exists (or ``timeout``); the tick."""
        if self.ticks == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.ticks

    # -- sampling -----------------------------------------------------------------------

    def sample(self) -> None:
        """Take a snapshot now and note what changed since the last one."""
        router = self.router
        if router is None:
            return
        now = time.time()
        views: list[NodeView] = router.nodes()
        self._note_changes(views, now)
        board = router.queue_snapshot()
        queue = queue_items(board["requests"], now)
        held = board["held"]
        self.held_peak.append((now, held))
        self.deepest = deepest_queue(router.queue_stats())
        nodes = [node_card(view) for view in views]
        running = sum(1 for item in queue if item["state"] == "running")
        states: dict[str, int] = {}
        for card in nodes:
            states[card["state"]] = states.get(card["state"], 0) + 1
        self.snapshot = {
            "t": now,
            "summary": {
                "nodes": len(nodes),
                "states": states,
                "running": running,
                "queued": len(queue) - running,
                "held": held,
                "reaped": board["reaped"],
                "loaded": sum(len(card["loaded"]) for card in nodes),
                "max_queue_depth": board["max_queue_depth"],
            },
            "nodes": nodes,
            "queue": queue[:MAX_QUEUE_ITEMS],
            "queue_truncated": max(0, len(queue) - MAX_QUEUE_ITEMS),
            "pulls": self.pulls.listing(now) if self.pulls is not None else [],
            "models": model_catalog(views),
        }
        self.encoded = _encode(self.snapshot)
        self.ticks += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _note_changes(self, views: list[NodeView], now: float) -> None:
        last = self._last
        current: dict[str, tuple[str, dict[str, int]]] = {}
        for view in views:
            loaded = {key: model.context_length for key, model in view.loaded.items()}
            state = node_state(view)
            current[view.name] = (state, loaded)
            before = last.get(view.name)
            if before is None:
                continue
            old_state, old_loaded = before
            if old_state != state:
                self.events.append(FleetEvent(now, view.name, "status", detail=state))
            for key, ctx in loaded.items():
                if key not in old_loaded:
                    self.events.append(FleetEvent(now, view.name, "load", key, str(ctx)))
                elif ctx and old_loaded[key] and ctx != old_loaded[key]:
                    detail = f"{old_loaded[key]} -> {ctx}"
                    self.events.append(FleetEvent(now, view.name, "context", key, detail))
            for key in old_loaded:
                if key not in loaded:
                    self.events.append(FleetEvent(now, view.name, "unload", key))
        self._last = current
        horizon = now - HISTORY_SECONDS
        while self.events and self.events[0].at < horizon:
            self.events.popleft()

    def recent(self, kind: str, seconds: float, now: float | None = None) -> list[FleetEvent]:
        """Events of one kind in the last ``seconds``."""
        since = (now or time.time()) - seconds
        return [e for e in self.events if e.kind == kind and e.at >= since]


def node_state(view: NodeView) -> str:
    if view.draining and view.status in ("online", "degraded"):
        return "draining"
    return view.status


def node_card(view: NodeView) -> dict[str, Any]:
    """What an overview card shows about one node."""
    temperatures = [g.get("temperature") for g in view.gpus if g.get("temperature") is not None]
    return {
        "name": view.name,
        "url": view.url,
        "state": node_state(view),
        "error": view.last_error,
        "type": view.type,
        "version": view.version,
        "agent": view.agent,
        "tags": view.tags,
        "cpu_percent": view.cpu_percent,
        "cpu_count": view.cpu_count,
        "ram_total": view.ram_total,
        "ram_used": max(0, view.ram_total - view.ram_available) if view.ram_total else 0,
        "vram_total": view.vram_total,
        "vram_used": view.vram_used,
        "temperature": max(temperatures) if temperatures else None,
        "gpus": len(view.gpus),
        "models": len(view.models),
        "loaded": [
            {
                "name": m.name,
                "size": m.size,
                "size_vram": m.size_vram,
                "context": m.context_length,
                "expires_at": m.expires_at,
            }
            for m in view.loaded.values()
        ],
        "in_flight": view.in_flight,
        "queued": sum(view.queued_by_model.values()),
        "slots": view.slots,
    }


def deepest_queue(stats: dict[str, dict[str, dict[str, Any]]]) -> tuple[str, int]:
    """The longest queue (``"model on node"``, waiting requests)."""
    deepest = ("", 0)
    for node, by_model in stats.items():
        for model, queue in by_model.items():
            if int(queue.get("pending", 0)) > deepest[1]:
                deepest = (f"{model} on {node}", int(queue["pending"]))
    return deepest


EMBED_HINTS = ("embed", "minilm", "bge-", "e5-")


EMBED_FAMILIES = ("bert", "nomic-bert", "xlm-roberta")


def workload_of(capabilities: list[str], name: str, family: str = "") -> str:
    """``embed`` or ``text``: what a model serves, by its capabilities (Ollama lists them
    in ``/api/show``, some nodes in ``/api/tags``), else by its family or its name."""
    if capabilities:
        embeds = "embedding" in capabilities and "completion" not in capabilities
        return "embed" if embeds else "text"
    if family in EMBED_FAMILIES:
        return "embed"
    return "embed" if any(hint in name.lower() for hint in EMBED_HINTS) else "text"


def model_catalog(views: list[NodeView]) -> list[dict[str, Any]]:
    """Every model on some node's disk or in memory: workload, size, where it is."""
    found: dict[str, dict[str, Any]] = {}
    for view in views:
        for key, entry in view.models.items():
            item = found.setdefault(
                key, {"name": key, "size": entry.size, "workload": "", "on": [], "loaded": []}
            )
            item["on"].append(view.name)
            family = str((entry.details or {}).get("family") or "")
            item["workload"] = item["workload"] or workload_of(entry.capabilities, key, family)
        for key, loaded in view.loaded.items():
            item = found.setdefault(
                key, {"name": key, "size": loaded.size, "workload": "", "on": [], "loaded": []}
            )
            item["loaded"].append(view.name)
            item["workload"] = item["workload"] or workload_of([], key)
    return sorted(found.values(), key=lambda item: item["name"])


def queue_items(requests: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Every request waiting in or running through the router's queues, oldest first."""
    items = [_item(request, now) for request in requests]
    items.sort(key=lambda item: -item["wait_s"])
    return items


def _item(request: dict[str, Any], now: float) -> dict[str, Any]:
    endpoint = request.get("endpoint", "")
    # The request's own workload: an embeddings call is [EMBED] whatever model serves it.
    kind = "embed" if endpoint in ("embed", "embeddings") else request["kind"]
    item = {
        "id": request["id"],
        "kind": kind,
        "model": request["model"],
        "node": request["node"],
        "state": request["state"],
        "wait_s": round(max(0.0, now - request["received_at"]), 2),
        "tags": request["tags"],
        "api": request["api"],
    }
    if request["state"] == "queued":
        item["position"] = request["position"]
    return item
