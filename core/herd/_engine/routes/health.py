"""Liveness and readiness: ``/`` as Ollama answers it, ``/healthz`` (the process serves) and
``/readyz`` (at least one node is online) for load balancers, orchestrators and scripts."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, route

import herd
from herd._engine.routes.common import JSON, gateway_of

OLLAMA_IS_RUNNING = b"Ollama is running"


@route("/", http_method=["GET", "HEAD"], status_code=200)
async def root() -> Response[bytes]:
    """``Ollama is running``: clients probe this before they talk to a server."""
    # The header is given whole: Litestar appends a second "; charset=utf-8" to a text/*
    # media_type that already carries one.
    return Response(OLLAMA_IS_RUNNING, headers={"content-type": "text/plain; charset=utf-8"})


# HEAD too: uptime monitors and `curl -I` probe with it (a 405 read as "down")
@route("/healthz", http_method=["GET", "HEAD"], status_code=200)
async def healthz(request: Request[Any, Any, Any]) -> Response[bytes]:
    """200 with the router's version and node counts while the process can serve."""
    gateway = gateway_of(request)
    views = gateway.fleet.views()
    counts = {"total": len(views), "online": 0, "offline": 0, "unknown": 0}
    for view in views:
        counts[view.status] = counts.get(view.status, 0) + 1
    body: dict[str, Any] = {"status": "ok", "version": herd.__version__, "nodes": counts}
    if gateway.cluster is not None:  # degraded still serves: 200, and says so
        body["cluster"] = gateway.cluster.status()
    return Response(msgspec.json.encode(body), media_type=JSON)


@route("/readyz", http_method=["GET", "HEAD"], status_code=200, opt={"herd_auth": "public"})
async def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    """200 once at least one node is online, 503 before: what a load balancer should ask."""
    views = gateway_of(request).fleet.views()
    online = [v.name for v in views if v.status == "online"]
    body = {"status": "ready" if online else "not ready", "online": online}
    if not online:
        body["reason"] = (
            f"no node is online ({len(views)} known)" if views else "no nodes configured or found"
        )
    return Response(msgspec.json.encode(body), media_type=JSON, status_code=200 if online else 503)


ROUTES = [root, healthz, readyz]
