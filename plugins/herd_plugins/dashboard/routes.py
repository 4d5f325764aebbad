"""The dashboard's own endpoints: live events, health, advice, series, settings, actions.

The traces engineer's analytics endpoints (``/dashboard/api/overview``, ``trends``,
``models``, ``tags``, ``apps``, ``traces``) live in :mod:`herd_plugins.dashboard.api`;
these add what the page needs beyond them. Queries run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from herd.errors import HerdError
from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from herd_plugins.dashboard import analytics
from herd_plugins.dashboard.advice import recommend
from herd_plugins.dashboard.bench import BenchmarkSpec
from herd_plugins.dashboard.health import check_health, gather, trace_counts
from herd_plugins.dashboard.series import series as series_query
from herd_plugins.sink_duckdb import DuckDBSink

__all__ = ["ROUTES"]

log = logging.getLogger("herd.dashboard")

JSON = "application/json; charset=utf-8"
ADMIN = {"herd_auth": "admin"}  # the router checks the admin key (or loopback) for these
STREAM_SECONDS = 15.0  # then the browser reconnects: a server shutting down never waits long
_encode = msgspec.json.encode


def _json(body: Any, status: int = 200) -> Response[bytes]:
    return Response(_encode(body), status_code=status, media_type=JSON)


def _sink(request: Request[Any, Any, Any]) -> DuckDBSink | None:
    for sink in request.app.state.gateway.sinks:
        if isinstance(sink, DuckDBSink):
            return sink
    return None


async def _read(sink: DuckDBSink, question: Any, *args: Any) -> Any:
    def run() -> Any:
        with sink.reader() as cursor:
            return question(cursor, *args)

    return await asyncio.to_thread(run)


async def _body(request: Request[Any, Any, Any]) -> Any:
    try:
        return msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise HerdError(400, f"the body is not JSON: {exc}") from None


# -- live ------------------------------------------------------------------------------


@get("/dashboard/events", include_in_schema=False)
async def events(request: Request[Any, Any, Any]) -> ServerSentEvent:
    """A fleet snapshot (nodes, queue, summary) every second, as ``event: fleet``."""
    monitor = request.app.state.dashboard_monitor

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        seen = -1
        ends = time.monotonic() + STREAM_SECONDS
        while monitor.running and (left := ends - time.monotonic()) > 0:
            tick = await monitor.next_snapshot(seen, min(left, 5.0))
            if tick != seen:
                seen = tick
                yield ServerSentEventMessage(data=monitor.encoded.decode(), event="fleet")

    return ServerSentEvent(
        stream(), retry_duration=1000, headers={"Cache-Control": "no-cache, no-transform"}
    )


@get("/dashboard/api/fleet", include_in_schema=False)
async def fleet(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The latest snapshot the events stream sends (for scripts and tests)."""
    monitor = request.app.state.dashboard_monitor
    return Response(monitor.encoded, media_type=JSON)


# -- health and advice -----------------------------------------------------------------


@get("/dashboard/api/health", include_in_schema=False)
async def health(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Every health check with its status, what it saw and what to do."""
    now = time.time()
    inputs = gather(request.app.state.dashboard_monitor, now)
    sink = _sink(request)
    if sink is not None:
        inputs.traces = await _read(sink, trace_counts, now)
        stats = sink.stats()
        inputs.dropped_traces = stats["dropped"]
        inputs.pending_traces = stats["queued"]
    return _json({"t": now, "checks": check_health(inputs)})


@get("/dashboard/api/recommendations", include_in_schema=False)
async def recommendations(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Which models to keep loaded where, from the last day's demand and each node's room."""
    now = time.time()
    sink = _sink(request)
    demand = await _read(sink, analytics.models, now, 24) if sink is not None else []
    views = [node.view for node in request.app.state.gateway.fleet.nodes.values()]
    return _json({"t": now, **recommend(demand, views)})


@get("/dashboard/api/series", include_in_schema=False)
async def series(
    request: Request[Any, Any, Any],
    window: Annotated[str, Parameter(pattern="^(hour|day|week)$")] = "hour",
    by: Annotated[str | None, Parameter(pattern="^(model|node)$")] = None,
) -> Response[bytes]:
    """Requests, latency and TTFT percentiles, tokens/s and errors over the window."""
    sink = _sink(request)
    if sink is None:
        raise HerdError(503, "the trace store (duckdb sink) is not running")
    return _json(await _read(sink, series_query, time.time(), window, by))


# -- settings --------------------------------------------------------------------------


@get("/dashboard/api/settings", include_in_schema=False)
async def get_settings(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The live toggles, signal weights, overrides and the effective configuration."""
    return _json(request.app.state.gateway.live_settings.view())


@post("/dashboard/api/settings", opt=ADMIN, include_in_schema=False)
async def post_settings(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Change live settings at once (validated; 400 names every bad key)."""
    live = request.app.state.gateway.live_settings
    changed = live.update(await _body(request))
    return _json({"changed": changed, **live.view()})


# -- actions ---------------------------------------------------------------------------


@post("/dashboard/api/nodes/{name:str}/pull", opt=ADMIN, include_in_schema=False)
async def pull(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Start pulling a model onto one node; the overview shows it when it lands."""
    name = request.path_params["name"]
    gateway = request.app.state.gateway
    node = gateway.fleet.nodes.get(name)
    if node is None:
        raise HerdError(404, f"node '{name}' not found")
    body = await _body(request)
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise HerdError(400, 'send {"model": "<name>"}')
    monitor = request.app.state.dashboard_monitor
    monitor.start_pull(node, model.strip(), gateway.fleet)
    return _json({"node": name, "model": model.strip(), "status": "pulling"}, 202)


@get("/dashboard/api/benchmarks", include_in_schema=False)
async def benchmarks(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The run in progress (with its progress) and the history, newest first."""
    runner = request.app.state.dashboard_bench
    sink = _sink(request)
    history = await asyncio.to_thread(runner.history, sink)
    return _json({"current": runner.progress(), "history": history})


@post("/dashboard/api/benchmarks", opt=ADMIN, include_in_schema=False)
async def start_benchmark(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Start a bounded benchmark: ``{"model", "duration_s", "concurrency", "num_predict"}``."""
    try:
        spec = msgspec.json.decode(await request.body(), type=BenchmarkSpec)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HerdError(400, f"invalid benchmark: {exc}") from None
    runner = request.app.state.dashboard_bench
    if runner.running:
        raise HerdError(409, "a benchmark is already running")
    gateway = request.app.state.gateway
    headers = {}
    keys = gateway.settings.auth.api_keys
    if keys:  # the router calls itself like a client
        headers["Authorization"] = f"Bearer {keys[0].key}"
    run = runner.start(spec, gateway.http, _own_url(request), headers, _sink(request))
    return _json(run, 202)


@post("/dashboard/api/benchmarks/cancel", opt=ADMIN, include_in_schema=False)
async def cancel_benchmark(request: Request[Any, Any, Any]) -> Response[bytes]:
    runner = request.app.state.dashboard_bench
    await runner.cancel()
    return _json({"current": runner.progress()})


def _own_url(request: Request[Any, Any, Any]) -> str:
    """This server's own address (the socket it listens on, never the Host header)."""
    server = request.scope.get("server") or ("127.0.0.1", 11435)
    host, port = str(server[0]), int(server[1] or 80)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


ROUTES = [
    events,
    fleet,
    health,
    recommendations,
    series,
    get_settings,
    post_settings,
    pull,
    benchmarks,
    start_benchmark,
    cancel_benchmark,
]
