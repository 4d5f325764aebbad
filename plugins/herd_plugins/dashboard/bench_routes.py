"""The Benchmarks tab's endpoints: the model list per workload, start, cancel, history."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from herd.errors import HerdError
from litestar import Request, Response, get, post

from herd_plugins.dashboard.access import ADMIN
from herd_plugins.dashboard.bench import BenchmarkSpec
from herd_plugins.dashboard.monitor import model_catalog
from herd_plugins.dashboard.store import json, router_of, store_of

__all__ = ["ROUTES", "check_model"]

_SERVES = {"chat": "text", "embed": "embed"}


def check_model(router: Any, spec: BenchmarkSpec) -> None:
    """400 unless an online node has the model and the model serves the workload."""
    usable = [v for v in router.nodes() if v.status in ("online", "degraded") and not v.draining]
    catalog = {item["name"]: item for item in model_catalog(usable)}
    key = spec.model.strip().lower()
    item = catalog.get(key) or catalog.get(f"{key}:latest")
    if item is None:
        offered = ", ".join(
            n for n, i in catalog.items() if i["workload"] == _SERVES[spec.workload]
        )
        raise HerdError(
            400,
            f"no online node has {spec.model}; pull it first (models for {spec.workload}: "
            f"{offered or 'none'})",
        )
    if item["workload"] != _SERVES[spec.workload]:
        other = "embed" if spec.workload == "chat" else "chat"
        raise HerdError(
            400, f"{item['name']} cannot serve {spec.workload}: choose the {other} workload"
        )


@get("/dashboard/api/benchmarks", include_in_schema=False)
async def benchmarks(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The run in progress (with its progress) and the history, newest first."""
    runner = request.app.state.dashboard_bench
    sink = store_of(router_of(request))
    # The run first: one that finishes while the history is read then still shows as
    # running (the page asks again), never as ended with the history read before it was
    # saved (the page would stop asking and never show the run).
    current = runner.progress()
    history = await asyncio.to_thread(runner.history, sink)
    return json({"current": current, "history": history})


@post("/dashboard/api/benchmarks", opt=ADMIN, include_in_schema=False)
async def start_benchmark(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Start a bounded benchmark: ``{"model", "workload", "duration_s", "concurrency",
    "num_predict", "max_error_share"}``; 400 for a model that cannot serve the workload."""
    try:
        spec = msgspec.json.decode(await request.body(), type=BenchmarkSpec)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HerdError(400, f"invalid benchmark: {exc}") from None
    runner = request.app.state.dashboard_bench
    if runner.running:
        raise HerdError(409, "a benchmark is already running")
    router = router_of(request)
    check_model(router, spec)
    headers = {}
    auth = router.settings.auth
    # The router calls itself like a client: as the admin (the admin key is accepted as a
    # client key named "admin"); with no admin key, as the first client key if any.
    key = auth.admin_key or (auth.api_keys[0].key if auth.api_keys else "")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    run = runner.start(spec, router.http, _own_url(request), headers, store_of(router))
    return json(run, 202)


@post("/dashboard/api/benchmarks/cancel", opt=ADMIN, include_in_schema=False)
async def cancel_benchmark(request: Request[Any, Any, Any]) -> Response[bytes]:
    runner = request.app.state.dashboard_bench
    await runner.cancel()
    return json({"current": runner.progress()})


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


ROUTES = [benchmarks, start_benchmark, cancel_benchmark]
