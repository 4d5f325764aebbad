"""The dashboard's live and operating endpoints: events, health, advice, series, settings.

Every route of the package is gathered in :data:`ALL_ROUTES`: these, the analytics API
(:mod:`.api`), the model actions (:mod:`.actions`) and the benchmarks (:mod:`.bench_routes`).
Queries run in worker threads.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from herd.errors import HerdError
from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from herd_plugins.dashboard import actions, analytics, api, bench_routes
from herd_plugins.dashboard.access import ADMIN
from herd_plugins.dashboard.advice import recommend
from herd_plugins.dashboard.health import check_health, gather, trace_counts
from herd_plugins.dashboard.series import series as series_query
from herd_plugins.dashboard.store import (
    JSON,
    body_of,
    json,
    read,
    router_of,
    store_of,
    trace_store,
)

__all__ = ["ALL_ROUTES", "ROUTES"]

STREAM_SECONDS = 15.0  # then the browser reconnects: a server shutting down never waits long


@get("/dashboard/events", include_in_schema=False)
async def events(request: Request[Any, Any, Any]) -> ServerSentEvent:
    """A fleet snapshot (nodes, queue, summary, pulls) every second, as ``event: fleet``."""
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
    return Response(request.app.state.dashboard_monitor.encoded, media_type=JSON)


@get("/dashboard/api/health", include_in_schema=False)
async def health(
    request: Request[Any, Any, Any], bench: Annotated[bool, Parameter()] = False
) -> Response[bytes]:
    """Every health check with its status, what it saw and what to do."""
    now = time.time()
    inputs = gather(request.app.state.dashboard_monitor, now)
    sink = store_of(router_of(request))
    if sink is not None:
        inputs.traces = await read(sink, trace_counts, now, bench)
        stats = sink.stats()
        inputs.dropped_traces = stats["dropped"]
        inputs.pending_traces = stats["queued"]
    return json({"t": now, "traces": sink is not None, "checks": check_health(inputs)})


@get("/dashboard/api/recommendations", include_in_schema=False)
async def recommendations(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Only what calls for an action: what to load, pin, unload or pull, with evidence."""
    now = time.time()
    router = router_of(request)
    sink = store_of(router)
    demand = await read(sink, analytics.models, now, 24) if sink is not None else []
    return json({"t": now, "traces": sink is not None, **recommend(demand, router.nodes())})


@get("/dashboard/api/series", include_in_schema=False)
async def series(
    request: Request[Any, Any, Any],
    window: Annotated[str, Parameter(pattern="^(hour|day|week|custom)$")] = "hour",
    by: Annotated[str | None, Parameter(pattern="^(model|node)$")] = None,
    since: api.UnixSeconds = None,
    until: api.UnixSeconds = None,
    bench: Annotated[bool, Parameter()] = False,
) -> Response[bytes]:
    """Requests, latency and TTFT percentiles, tokens/s and errors over one window, and the
    totals over that same window."""
    if window == "custom" and (since is None or until is None):
        raise HerdError(400, "a custom window needs since and until (Unix seconds)")
    sink = trace_store(request)
    try:
        return json(
            await read(
                sink, series_query, time.time(), window, by, since=since, until=until, bench=bench
            )
        )
    except ValueError as exc:
        raise HerdError(400, str(exc)) from None


@get("/dashboard/api/settings", include_in_schema=False)
async def get_settings(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The live toggles, signal weights, overrides and the effective configuration."""
    return json(router_of(request).settings_view())


@post("/dashboard/api/settings", opt=ADMIN, include_in_schema=False)
async def post_settings(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Change live settings at once (validated; 400 names every bad key)."""
    router = router_of(request)
    changed = router.update_settings(await body_of(request))
    return json({"changed": changed, **router.settings_view()})


ROUTES = [events, fleet, health, recommendations, series, get_settings, post_settings]
ALL_ROUTES = [*ROUTES, *api.ROUTES, *actions.ROUTES, *bench_routes.ROUTES]
