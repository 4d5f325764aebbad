"""Where the dashboard finds its data: the router, and the DuckDB sink among its sinks.

The dashboard does not import the sink: it looks among ``router.sinks`` for the one
named ``duckdb`` that lends read cursors. With that sink disabled the dashboard still
runs; what needs traces answers 503 "traces are off" and the page says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
from herd.errors import HerdError
from litestar import Request, Response

__all__ = [
    "TRACES_OFF",
    "answer",
    "body_of",
    "json",
    "read",
    "router_of",
    "store_of",
    "trace_store",
]

JSON = "application/json; charset=utf-8"
TRACES_OFF = "traces are off: the trace store (the duckdb sink) is not running"
_encode = msgspec.json.encode


def router_of(request: Request[Any, Any, Any]) -> Any:
    """The public :class:`herd.router.Router` of the app serving ``request``."""
    return request.app.state.router


def store_of(router: Any) -> Any | None:
    """The DuckDB trace sink, or None when it is disabled."""
    for sink in router.sinks:
        if getattr(sink, "name", "") == "duckdb" and hasattr(sink, "reader"):
            return sink
    return None


def trace_store(request: Request[Any, Any, Any]) -> Any:
    """The DuckDB trace sink; 503 saying traces are off without one."""
    sink = store_of(router_of(request))
    if sink is None:
        raise HerdError(503, TRACES_OFF)
    return sink


async def read(sink: Any, question: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``question(cursor, ...)`` on a cursor of its own in a worker thread."""

    def run() -> Any:
        with sink.reader() as cursor:
            return question(cursor, *args, **kwargs)

    return await asyncio.to_thread(run)


def json(body: Any, status: int = 200) -> Response[bytes]:
    return Response(_encode(body), status_code=status, media_type=JSON)


async def answer(
    request: Request[Any, Any, Any], question: Callable[..., Any], *args: Any, **kwargs: Any
) -> Response[bytes]:
    """The JSON answer of one analytics question (503 when traces are off)."""
    return json(await read(trace_store(request), question, *args, **kwargs))


async def body_of(request: Request[Any, Any, Any]) -> Any:
    """The request's JSON body; 400 when it is not JSON."""
    try:
        return msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise HerdError(400, f"the body is not JSON: {exc}") from None
