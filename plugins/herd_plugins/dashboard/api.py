"""The dashboard's JSON API under ``/dashboard/api/``: the analytics queries over HTTP.

Each handler runs its query in a worker thread on a cursor of its own, so a slow
query never holds up the event loop (nor the requests it is relaying).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import HTTPException
from litestar.params import Parameter
from litestar.plugins import InitPluginProtocol

from herd_plugins.dashboard import analytics
from herd_plugins.sink_duckdb import DuckDBSink

if TYPE_CHECKING:
    from litestar.config.app import AppConfig

__all__ = ["ROUTES", "DashboardApiPlugin"]

JSON = "application/json; charset=utf-8"
MAX_HOURS = 24 * 90
MAX_PAGE = 500
_encode = msgspec.json.encode
Filter = Annotated[str | None, Parameter(max_length=500)]


def _sink(request: Request[Any, Any, Any]) -> DuckDBSink:
    for sink in request.app.state.gateway.sinks:
        if isinstance(sink, DuckDBSink):
            return sink
    raise HTTPException(status_code=503, detail="the trace store (duckdb sink) is not running")


def _query(sink: DuckDBSink, question: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with sink.reader() as cursor:
        return question(cursor, *args, **kwargs)


async def _answer(
    request: Request[Any, Any, Any], question: Callable[..., Any], *args: Any, **kwargs: Any
) -> Response[bytes]:
    sink = _sink(request)
    result = await asyncio.to_thread(_query, sink, question, *args, **kwargs)
    return Response(_encode(result), media_type=JSON)


@get("/dashboard/api/overview")
async def overview(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Requests, errors, latency and TTFT percentiles and tokens: last hour, last day, per node."""
    sink = _sink(request)
    result = await asyncio.to_thread(_query, sink, analytics.overview, time.time())
    result["store"] = sink.stats()
    return Response(_encode(result), media_type=JSON)


@get("/dashboard/api/trends")
async def trends(
    request: Request[Any, Any, Any],
    hours: Annotated[int, Parameter(ge=1, le=MAX_HOURS)] = 24,
    by: Annotated[str | None, Parameter(pattern="^(model|node)$")] = None,
) -> Response[bytes]:
    """Hourly series of requests, latency, TTFT, tokens/s and errors; ``by=model|node``."""
    return await _answer(request, analytics.trends, time.time(), hours, by)


@get("/dashboard/api/models")
async def models(
    request: Request[Any, Any, Any],
    hours: Annotated[int, Parameter(ge=1, le=MAX_HOURS)] = 168,
) -> Response[bytes]:
    """Per-model usage, latency, tokens/s, cold loads and last seen."""
    return await _answer(request, analytics.models, time.time(), hours)


@get("/dashboard/api/tags")
async def tags(
    request: Request[Any, Any, Any],
    hours: Annotated[int, Parameter(ge=1, le=MAX_HOURS)] = 168,
) -> Response[bytes]:
    """Per-tag requests, tokens, latency, TTFT and error rate."""
    return await _answer(request, analytics.tags, time.time(), hours)


@get("/dashboard/api/apps")
async def apps(
    request: Request[Any, Any, Any],
    days: Annotated[int, Parameter(ge=1, le=90)] = 7,
) -> Response[bytes]:
    """Per-app (tag) summary with a daily series."""
    return await _answer(request, analytics.apps, time.time(), days)


@get("/dashboard/api/traces")
async def traces(
    request: Request[Any, Any, Any],
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Parameter(ge=0)] = 0,
    tag: Filter = None,
    model: Filter = None,
    node: Filter = None,
    status: Filter = None,
) -> Response[bytes]:
    """Recent traces, newest first, filtered by tag, model, node and status."""
    return await _answer(
        request,
        analytics.trace_page,
        limit=limit,
        offset=offset,
        tag=tag,
        model=model,
        node=node,
        status=status,
    )


ROUTES = [overview, trends, models, tags, apps, traces]


class DashboardApiPlugin(InitPluginProtocol):
    """Adds the ``/dashboard/api/*`` routes to the router's Litestar app."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(ROUTES)
        return app_config
