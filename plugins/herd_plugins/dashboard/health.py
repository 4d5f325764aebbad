"""The Health tab: checks over the fleet's state, its recent events and the trace store.

Each check has a status (``ok``, ``warn``, ``bad``, or ``unknown`` when nothing tells),
what it saw, and a recommendation in plain words. Inputs are gathered by the route (the
monitor's snapshot and events, one SQL query, the sink's counters) so that the judging
itself is a pure function the tests call directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from herd_plugins.dashboard.analytics import traffic

if TYPE_CHECKING:
    import duckdb

    from herd_plugins.dashboard.monitor import FleetMonitor

__all__ = ["HealthInputs", "check_health", "gather", "trace_counts"]

WINDOW_S = 3600.0
FLAP_CHANGES = 3  # status changes of one node in the window
THRASH_LOADS = 3  # loads of one model on one node in the window
MIN_REQUESTS = 10  # below this, rates say nothing
ERROR_WARN, ERROR_BAD = 0.05, 0.20
RETRY_WARN = 0.10
MEMORY_WARN, MEMORY_BAD = 0.90, 0.97
SATURATION = 0.8


@dataclass(slots=True)
class HealthInputs:
    """Everything the checks read."""

    nodes: list[dict[str, Any]]
    status_changes: dict[str, int] = field(default_factory=dict)
    loads: dict[tuple[str, str], int] = field(default_factory=dict)
    context_reloads: list[tuple[str, str, str]] = field(default_factory=list)
    traces: dict[str, Any] | None = None
    reaped: int = 0
    held_now: int = 0
    held_peak: int = 0
    deepest_queue: tuple[str, int] = ("", 0)
    max_queue_depth: int = 64
    dropped_traces: int | None = None
    pending_traces: int = 0


def trace_counts(con: duckdb.DuckDBPyConnection, now: float, bench: bool = False) -> dict[str, Any]:
    """Requests, node failures, client rejections and retried requests in the last hour.

    Only ``failed`` counts as an error: a client's mistake is not the fleet's. The
    dashboard's own benchmark runs are left out unless ``bench``.
    """
    row = con.execute(
        f"""
        SELECT count(*),
            count(*) FILTER (WHERE status = 'failed'),
            count(*) FILTER (WHERE status = 'rejected'),
            count(*) FILTER (WHERE retries > 0)
        FROM traces
        WHERE received_at > make_timestamp($now::BIGINT) - INTERVAL 1 HOUR
            AND {traffic(bench)}
        """,
        {"now": int(now * 1_000_000)},
    ).fetchone()
    requests, errors, rejected, retried = (int(v or 0) for v in (row or (0, 0, 0, 0)))
    return {"requests": requests, "errors": errors, "rejected": rejected, "retried": retried}


def gather(monitor: FleetMonitor, now: float) -> HealthInputs:
    """The fleet half of the inputs, from the monitor (the route adds traces and sinks)."""
    snapshot = monitor.snapshot
    changes: dict[str, int] = {}
    for event in monitor.recent("status", WINDOW_S, now):
        changes[event.node] = changes.get(event.node, 0) + 1
    loads: dict[tuple[str, str], int] = {}
    for event in monitor.recent("load", WINDOW_S, now):
        loads[(event.node, event.model)] = loads.get((event.node, event.model), 0) + 1
    contexts = [(e.node, e.model, e.detail) for e in monitor.recent("context", WINDOW_S, now)]
    deepest = monitor.deepest
    peak = max((held for at, held in monitor.held_peak if at >= now - 300), default=0)
    summary = snapshot.get("summary", {})
    return HealthInputs(
        nodes=snapshot.get("nodes", []),
        status_changes=changes,
        loads=loads,
        context_reloads=contexts,
        reaped=int(summary.get("reaped", 0)),
        held_now=int(summary.get("held", 0)),
        held_peak=peak,
        deepest_queue=deepest,
        max_queue_depth=int(summary.get("max_queue_depth", 64)),
    )


def _check(key: str, title: str, status: str, detail: str, advice: str) -> dict[str, str]:
    return {"id": key, "title": title, "status": status, "detail": detail, "advice": advice}


def check_health(data: HealthInputs) -> list[dict[str, str]]:
    """Every check, in the order the tab shows them."""
    return [
        _offline(data),
        _flapping(data),
        _memory(data),
        _thrashing(data),
        _errors(data),
        _retries(data),
        _zombies(data),
        _saturation(data),
        _context(data),
        _dropped(data),
    ]


def _names(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _offline(data: HealthInputs) -> dict[str, str]:
    down = [n["name"] for n in data.nodes if n["state"] == "offline"]
    degraded = [n["name"] for n in data.nodes if n["state"] == "degraded"]
    if not data.nodes:
        return _check(
            "offline",
            "Nodes online",
            "bad",
            "No nodes are configured or registered.",
            "Add nodes to the YAML file or start herd-node on your machines.",
        )
    if down:
        return _check(
            "offline",
            "Nodes online",
            "bad" if len(down) == len(data.nodes) else "warn",
            f"Offline: {_names(down)}.",
            "Check that Ollama runs on these machines and that the router can reach them; "
            "drain a node you are taking down on purpose.",
        )
    if degraded:
        return _check(
            "offline",
            "Nodes online",
            "warn",
            f"Missing heartbeats: {_names(degraded)}.",
            "Their herd-node agents stopped reporting; they are used only as a last resort.",
        )
    return _check("offline", "Nodes online", "ok", f"All {len(data.nodes)} nodes answer.", "")


def _flapping(data: HealthInputs) -> dict[str, str]:
    flapping = [n for n, count in data.status_changes.items() if count >= FLAP_CHANGES]
    if flapping:
        return _check(
            "flapping",
            "Stable nodes",
            "warn",
            f"{_names(flapping)} changed state {FLAP_CHANGES}+ times in the last hour.",
            "A node that keeps dropping out usually has a network or power problem, or its "
            "Ollama crashes under load: look at its logs, or drain it until it is fixed.",
        )
    return _check("flapping", "Stable nodes", "ok", "No node flapped in the last hour.", "")


def _memory(data: HealthInputs) -> dict[str, str]:
    tight: list[str] = []
    worst = 0.0
    for node in data.nodes:
        for used, total, what in (
            (node["ram_used"], node["ram_total"], "RAM"),
            (node["vram_used"], node["vram_total"], "VRAM"),
        ):
            if total and used / total >= MEMORY_WARN:
                tight.append(f"{node['name']} ({what} {used / total:.0%})")
                worst = max(worst, used / total)
    if not any(n["ram_total"] or n["vram_total"] for n in data.nodes):
        return _check(
            "memory",
            "Memory pressure",
            "unknown",
            "No node reports its memory.",
            "Run herd-node beside Ollama to see RAM and VRAM here.",
        )
    if tight:
        return _check(
            "memory",
            "Memory pressure",
            "bad" if worst >= MEMORY_BAD else "warn",
            f"Nearly full: {_names(tight)}.",
            "Models will be evicted and reloaded. Load fewer or smaller models on these "
            "nodes (see Recommendations), or lower OLLAMA_MAX_LOADED_MODELS.",
        )
    return _check("memory", "Memory pressure", "ok", "Every node has memory to spare.", "")


def _thrashing(data: HealthInputs) -> dict[str, str]:
    busy = sorted(
        ((count, f"{model} on {node}") for (node, model), count in data.loads.items()),
        reverse=True,
    )
    thrashing = [f"{label} ({count}x)" for count, label in busy if count >= THRASH_LOADS]
    if thrashing:
        return _check(
            "thrashing",
            "Model reloads",
            "warn",
            f"Loaded again and again: {_names(thrashing)}.",
            "Two busy models are evicting each other. Give them more memory, route them to "
            "different nodes, or keep one resident with routing.keep_alive.",
        )
    loads = sum(data.loads.values())
    return _check("thrashing", "Model reloads", "ok", f"{loads} model loads in the last hour.", "")


def _rate(data: HealthInputs, key: str) -> tuple[int, float] | None:
    if data.traces is None:
        return None
    requests = int(data.traces["requests"])
    return requests, (data.traces[key] / requests if requests else 0.0)


def _errors(data: HealthInputs) -> dict[str, str]:
    rate = _rate(data, "errors")
    if rate is None:
        return _check("errors", "Error rate", "unknown", "The trace store is off.", "")
    requests, share = rate
    if requests < MIN_REQUESTS:
        detail = f"{requests} requests in the last hour: too few to judge."
        return _check("errors", "Error rate", "ok", detail, "")
    status = "bad" if share >= ERROR_BAD else "warn" if share >= ERROR_WARN else "ok"
    advice = (
        "Open the Requests tab filtered to status failed to see which node or model fails, and why."
        if status != "ok"
        else ""
    )
    rejected = int(data.traces.get("rejected", 0)) if data.traces else 0
    detail = f"{share:.1%} of {requests} requests failed on a node in the last hour"
    detail += f" ({rejected} more were client errors)." if rejected else "."
    return _check("errors", "Error rate", status, detail, advice)


def _retries(data: HealthInputs) -> dict[str, str]:
    rate = _rate(data, "retried")
    if rate is None:
        return _check("retries", "Retry rate", "unknown", "The trace store is off.", "")
    requests, share = rate
    if requests >= MIN_REQUESTS and share >= RETRY_WARN:
        return _check(
            "retries",
            "Retry rate",
            "warn",
            f"{share:.1%} of {requests} requests needed another node.",
            "Some node fails before answering. Its requests still succeed elsewhere, but each "
            "retry costs time: find the node in the traces and fix or drain it.",
        )
    return _check("retries", "Retry rate", "ok", f"{share:.1%} of requests were retried.", "")


def _zombies(data: HealthInputs) -> dict[str, str]:
    if data.reaped:
        return _check(
            "zombies",
            "Stuck requests",
            "warn",
            f"{data.reaped} requests stopped making progress and were reaped since start.",
            "A node hung mid-answer, or clients stopped reading. Check the nodes named in "
            "those traces; routing.stale_timeout_s sets how long a stream may stall.",
        )
    return _check("zombies", "Stuck requests", "ok", "No request had to be reaped.", "")


def _saturation(data: HealthInputs) -> dict[str, str]:
    where, depth = data.deepest_queue
    limit = max(1, data.max_queue_depth)
    if data.held_now or data.held_peak:
        return _check(
            "saturation",
            "Queue saturation",
            "bad",
            f"{max(data.held_now, data.held_peak)} requests found every queue full "
            "in the last 5 minutes.",
            "The fleet cannot keep up: add nodes or slots (OLLAMA_NUM_PARALLEL), or raise "
            "routing.max_queue_depth if the latency is acceptable.",
        )
    if depth >= SATURATION * limit:
        return _check(
            "saturation",
            "Queue saturation",
            "warn",
            f"{depth} of {limit} places taken in the queue for {where}.",
            "This queue is about to overflow; load the model on another node as well.",
        )
    return _check("saturation", "Queue saturation", "ok", "Queues have room.", "")


def _context(data: HealthInputs) -> dict[str, str]:
    if data.context_reloads:
        seen = [f"{model} on {node} ({detail})" for node, model, detail in data.context_reloads]
        return _check(
            "context",
            "Context reloads",
            "warn",
            f"{len(seen)} reloads for another context length: {_names(seen, 3)}.",
            "Clients ask for different num_ctx values, and each change reloads the model. "
            "Set routing.context_protection to pin (Settings tab) or align the clients.",
        )
    return _check("context", "Context reloads", "ok", "No model reloaded for num_ctx.", "")


def _dropped(data: HealthInputs) -> dict[str, str]:
    if data.dropped_traces is None:
        return _check("dropped", "Trace store", "unknown", "The trace store is off.", "")
    if data.dropped_traces:
        return _check(
            "dropped",
            "Trace store",
            "warn",
            f"{data.dropped_traces} traces were dropped ({data.pending_traces} waiting).",
            "The DuckDB writer cannot keep up or the disk failed: check the router's log, "
            "the disk under data_dir, and plugins.options.duckdb.queue_size.",
        )
    return _check("dropped", "Trace store", "ok", "Every trace was stored.", "")
