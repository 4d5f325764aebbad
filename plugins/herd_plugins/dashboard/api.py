"""The dashboard's analytics API under ``/dashboard/api/``: the trace store over HTTP.

Each handler runs its query in a worker thread on a cursor of its own, so a slow query
never holds up the event loop (nor the requests it is relaying). With the DuckDB sink
disabled every one answers 503 "traces are off".
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from herd.errors import HerdError
from litestar import Request, Response, get
from litestar.params import Parameter

from herd_plugins.dashboard import analytics, requests
from herd_plugins.dashboard.store import answer, json, read, router_of, store_of, trace_store

__all__ = ["ROUTES", "UnixSeconds"]

MAX_HOURS = 24 * 90
MAX_PAGE = 500
Filter = Annotated[str | None, Parameter(max_length=500)]
#: A moment as Unix seconds, up to the end of year 9999 (no infinity, nothing DuckDB's
#: timestamps cannot hold)
UnixSeconds = Annotated[float | None, Parameter(ge=0, le=253_402_300_799)]
Bench = Annotated[bool, Parameter(description="Count the dashboard's benchmark runs too.")]


@get("/dashboard/api/store", include_in_schema=False)
async def store(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Whether traces are on, and the store's counters."""
    sink = store_of(router_of(request))
    return json({"traces": sink is not None, **(sink.stats() if sink is not None else {})})


@get("/dashboard/api/overview")
async def overview(request: Request[Any, Any, Any], bench: Bench = False) -> Response[bytes]:
    """Requests, errors, latency and TTFT percentiles and tokens: last hour, last day, per node."""
    sink = trace_store(request)
    result = await read(sink, analytics.overview, time.time(), bench)
    result["store"] = sink.stats()
    return json(result)


@get("/dashboard/api/trends")
async def trends(
    request: Request[Any, Any, Any],
    hours: Annotated[int, Parameter(ge=1, le=MAX_HOURS)] = 24,
    by: Annotated[str | None, Parameter(pattern="^(model|node)$")] = None,
    bench: Bench = False,
) -> Response[bytes]:
    """Hourly series of requests, latency, TTFT, tokens/s and errors; ``by=model|node``."""
    return await answer(request, analytics.trends, time.time(), hours, by, bench)


@get("/dashboard/api/models")
async def models(
    request: Request[Any, Any, Any],
    hours: Annotated[int, Parameter(ge=1, le=MAX_HOURS)] = 168,
    bench: Bench = False,
) -> Response[bytes]:
    """Per-model usage, latency, tokens/s, cold loads and last seen."""
    return await answer(request, analytics.models, time.time(), hours, bench)


@get("/dashboard/api/tags")
async def tags(
    request: Request[Any, Any, Any],
    hours: Annotated[int, Parameter(ge=1, le=MAX_HOURS)] = 168,
    bench: Bench = False,
) -> Response[bytes]:
    """Per-tag requests, tokens, latency, TTFT and error rate."""
    return await answer(request, analytics.tags, time.time(), hours, bench)


@get("/dashboard/api/apps")
async def apps(
    request: Request[Any, Any, Any],
    days: Annotated[int, Parameter(ge=1, le=90)] = 7,
    bench: Bench = False,
) -> Response[bytes]:
    """Per-app (tag) summary with a daily series."""
    return await answer(request, analytics.apps, time.time(), days, bench)


@get("/dashboard/api/traces")
async def traces(
    request: Request[Any, Any, Any],
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Parameter(max_length=300)] = None,
    status: Filter = None,
    model: Filter = None,
    node: Filter = None,
    tag: Filter = None,
    api_key: Filter = None,
    kind: Filter = None,
    since: UnixSeconds = None,
    until: UnixSeconds = None,
    count: Annotated[bool, Parameter()] = True,
) -> Response[bytes]:
    """The trace log, newest first: one page and the ``next`` cursor (keyset paging)."""
    try:
        after = requests.parse_cursor(cursor)
    except ValueError as exc:
        raise HerdError(400, str(exc)) from None
    if since is not None and until is not None and until <= since:
        raise HerdError(400, "until must come after since")
    where = requests.TraceFilter(status, model, node, tag, api_key, kind, since, until)
    return await answer(request, requests.trace_page, where, limit=limit, cursor=after, count=count)


@get("/dashboard/api/traces/facets", include_in_schema=False)
async def trace_facets(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The statuses, models, nodes, tags, API keys and kinds the last week of traces hold."""
    return await answer(request, requests.facets, time.time())


@get("/dashboard/api/traces/{request_id:str}", include_in_schema=False)
async def one_trace(
    request: Request[Any, Any, Any], request_id: Annotated[str, Parameter()]
) -> Response[bytes]:
    """One trace in full: attempts, per-signal scores, queue wait, TTFT, tokens, notes."""
    found = await read(trace_store(request), requests.trace, request_id)
    if found is None:
        raise HerdError(404, f"no trace with request id {request_id!r}")
    return json(found)


ROUTES = [store, overview, trends, models, tags, apps, traces, trace_facets, one_trace]
