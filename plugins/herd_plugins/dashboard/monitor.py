"""The dashboard's eye on the fleet: one snapshot a second, and what changed between them.

One task per app samples the fleet and the scheduler's queues every second (reading
memory only: no I/O), keeps the snapshot the live overview streams, and remembers for
an hour the events the Health tab judges: nodes going up and down, models loading and
unloading, a model reloaded with another context length, the holding area filling up.
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
PULL_SHOWN_S = 60.0
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
    """Samples one gateway's fleet every second; see the module docstring."""

    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        self.interval = interval
        self.gateway: Any = None
        self.snapshot: dict[str, Any] = {"t": 0.0, "summary": {}, "nodes": [], "queue": []}
        self.encoded = _encode(self.snapshot)
        self.events: deque[FleetEvent] = deque(maxlen=MAX_EVENTS)
        self.held_peak: deque[tuple[float, int]] = deque(maxlen=600)
        self._last: dict[str, tuple[str, dict[str, int]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.ticks = 0
        self.pulls: dict[tuple[str, str], dict[str, Any]] = {}
        self._pull_tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        return self._task is not None

    # -- lifecycle (Litestar on_startup / on_shutdown) -----------------------------------

    async def start(self, app: Any) -> None:
        self.gateway = app.state.gateway
        self._changed = asyncio.Event()
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, app: Any = None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._pull_tasks):
            task.cancel()
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
        gateway = self.gateway
        fleet = getattr(gateway, "fleet", None)
        scheduler = getattr(gateway, "scheduler", None)
        if fleet is None or scheduler is None:
            return
        now = time.time()
        views: list[NodeView] = [node.view for node in fleet.nodes.values()]
        self._note_changes(views, now)
        board = scheduler.board
        queue = queue_items(board, now)
        held = board.held
        self.held_peak.append((now, held))
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
                "reaped": board.reaped,
                "loaded": sum(len(card["loaded"]) for card in nodes),
                "max_queue_depth": board.max_queue_depth,
            },
            "nodes": nodes,
            "queue": queue[:MAX_QUEUE_ITEMS],
            "queue_truncated": max(0, len(queue) - MAX_QUEUE_ITEMS),
            "pulls": self._pull_list(now),
        }
        self.encoded = _encode(self.snapshot)
        self.ticks += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- pulls started from the page -----------------------------------------------------

    def start_pull(self, node: Any, model: str, fleet: Any) -> None:
        """Pull ``model`` onto ``node`` in the background; the snapshot shows how it went."""
        self.pulls[(node.name, model)] = {"status": "pulling", "error": "", "at": time.time()}
        task = asyncio.get_running_loop().create_task(self._pull(node, model, fleet))
        self._pull_tasks.add(task)
        task.add_done_callback(self._pull_tasks.discard)

    async def _pull(self, node: Any, model: str, fleet: Any) -> None:
        entry = self.pulls[(node.name, model)]
        body = _encode({"model": model, "stream": False})
        try:
            reply = await node.backend.call("POST", "/api/pull", body)
            try:
                last = reply.first
                if reply.streaming:
                    async for line in reply.rest():
                        last = line
            finally:
                await reply.aclose()
            answer = msgspec.json.decode(last) if last.strip() else {}
            if reply.status >= 400 or (isinstance(answer, dict) and answer.get("error")):
                error = answer.get("error") if isinstance(answer, dict) else None
                entry.update(status="failed", error=str(error or f"HTTP {reply.status}"))
            else:
                entry["status"] = "done"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            entry.update(status="failed", error=str(exc) or type(exc).__name__)
        entry["at"] = time.time()
        log.info("dashboard pull of %s onto %s: %s", model, node.name, entry["status"])
        await fleet.poll(node)

    def _pull_list(self, now: float) -> list[dict[str, Any]]:
        for key, entry in list(self.pulls.items()):
            if entry["status"] != "pulling" and now - entry["at"] > PULL_SHOWN_S:
                del self.pulls[key]
        return [{"node": n, "model": m, **entry} for (n, m), entry in self.pulls.items()]

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


def queue_items(board: Any, now: float) -> list[dict[str, Any]]:
    """Every request waiting in or running through the router's queues, oldest first."""
    items: list[dict[str, Any]] = []
    for node, by_model in board.queues.items():
        for model, queue in by_model.items():
            for slot in list(queue.active):
                request = slot.request
                if request is not None:
                    items.append(_item(request, node, model, "running", now))
            for position, (_, request) in enumerate(list(queue.waiters), start=1):
                item = _item(request, node, model, "queued", now)
                item["position"] = position
                items.append(item)
    items.sort(key=lambda item: -item["wait_s"])
    return items


def _item(request: Any, node: str, model: str, state: str, now: float) -> dict[str, Any]:
    return {
        "id": request.request_id,
        "kind": request.kind,
        "model": model,
        "node": node,
        "state": state,
        "wait_s": round(max(0.0, now - request.received_at), 2),
        "tags": request.tags,
        "api": request.api,
    }
