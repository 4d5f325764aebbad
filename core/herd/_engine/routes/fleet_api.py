"""The fleet API: agents' heartbeats, the fleet's status, and draining nodes."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, get, post

import herd
from herd._engine.audit import audit
from herd._engine.fleet.membership import Membership, MembershipError
from herd._engine.fleet.registry import FleetNode
from herd._engine.routes.common import JSON, gateway_of
from herd.errors import HerdError
from herd.net import is_loopback_client
from herd.protocol.heartbeat import decode_heartbeat, encode

__all__ = ["ROUTES"]

#: A heartbeat lists every model on a node's disk with its details; this is plenty.
MAX_HEARTBEAT_BYTES = 8 * 1024 * 1024
_encode = msgspec.json.encode
ADMIN = {"herd_auth": "admin"}


@post("/fleet/heartbeat", status_code=200, opt={"herd_auth": "node"})
async def heartbeat(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Take a herd-node heartbeat: 401 without the node token, and nothing registered."""
    membership = gateway_of(request).fleet.membership
    if membership.refusal:
        audit("refused agent", request, level=30, reason="agents are refused here")
        raise HerdError(403, membership.refusal)
    if not membership.token and not is_loopback_client(request.scope):
        raise HerdError(
            403, "with no auth.node_token set, only agents on this machine may send heartbeats"
        )
    if not membership.authorized(request.headers.get("authorization", "")):
        audit("refused agent", request, level=30, reason="missing or wrong node token")
        return Response(
            _encode({"error": "missing or wrong node token (Authorization: Bearer <token>)"}),
            status_code=401,
            media_type=JSON,
            headers={"WWW-Authenticate": 'Bearer realm="herd-node"'},
        )
    body = await request.body()
    if len(body) > MAX_HEARTBEAT_BYTES:
        raise HerdError(413, f"heartbeat larger than {MAX_HEARTBEAT_BYTES} bytes")
    try:
        beat = decode_heartbeat(body)
    except msgspec.DecodeError as exc:
        raise HerdError(400, f"not a heartbeat: {exc}") from None
    try:
        reply = membership.accept(beat)
    except MembershipError as exc:
        audit("refused agent", request, level=30, node=beat.name, reason=exc.message)
        raise HerdError(exc.status, exc.message) from None
    cluster = gateway_of(request).cluster
    if cluster is not None:  # every replica sees the node, whichever one the agent reached
        cluster.heartbeat_accepted(body)
    return Response(encode(reply), media_type=JSON)


@get("/fleet/status", status_code=200)
async def status(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Every node with its state, models, resources and queues, and a fleet summary."""
    gateway = gateway_of(request)
    fleet = gateway.fleet
    now_wall, now = time.time(), time.monotonic()
    nodes = [_node_status(node, fleet.membership, now_wall, now) for node in fleet.nodes.values()]
    body: dict[str, Any] = {
        "router": {
            "version": herd.__version__,
            "agents": "refused" if fleet.membership.refusal else "accepted",
            "agents_refused_because": fleet.membership.refusal,
            "node_token": bool(fleet.membership.token),
        },
        "summary": _summary(nodes),
        "nodes": nodes,
    }
    scheduler = gateway.scheduler
    queue_stats = getattr(scheduler, "queue_stats", None)
    if callable(queue_stats):
        body["queues"] = queue_stats()
    reaped = getattr(scheduler, "reaped", None)
    if reaped is not None:
        body["reaped"] = reaped
    if gateway.cluster is not None:
        body["cluster"] = gateway.cluster.status()
    return Response(_encode(body), media_type=JSON)


@post("/fleet/nodes/{name:str}/drain", status_code=200, opt=ADMIN)
async def drain(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Send the node no new requests; its in-flight requests finish."""
    return _set_drain(request, request.path_params["name"], True)


@post("/fleet/nodes/{name:str}/undrain", status_code=200, opt=ADMIN)
async def undrain(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Let a drained node take requests again."""
    return _set_drain(request, request.path_params["name"], False)


def _set_drain(request: Request[Any, Any, Any], name: str, draining: bool) -> Response[bytes]:
    gateway = gateway_of(request)  # the admin check ran in herd._engine.auth
    try:
        view = gateway.fleet.membership.set_drain(name, draining)
    except KeyError:
        known = ", ".join(gateway.fleet.nodes) or "none"
        raise HerdError(404, f"node '{name}' not found (nodes: {known})") from None
    if gateway.cluster is not None:
        gateway.cluster.drain_changed(name, draining)
    body = {"node": name, "draining": view.draining, "state": _state(view.status, view.draining)}
    return Response(_encode(body), media_type=JSON)


def _state(status: str, draining: bool) -> str:
    return "draining" if draining and status in ("online", "degraded") else status


def _node_status(
    node: FleetNode, membership: Membership, now_wall: float, now: float
) -> dict[str, Any]:
    view = node.view
    record = membership.records.get(node.name)
    config = node.config
    listed = node.name in membership.yaml_names
    source = "yaml+agent" if record and listed else "agent" if record else "yaml"
    if node.discovered and not record:
        source = "discovered"
    if config.num_parallel:
        parallel_source = "yaml"
    elif view.num_parallel:
        parallel_source = "agent"
    else:
        parallel_source = "unknown"
    entry: dict[str, Any] = {
        "name": view.name,
        "url": view.url,
        "type": view.type,
        "state": _state(view.status, view.draining),
        "status": view.status,
        "draining": view.draining,
        "source": source,
        "agent": view.agent,
        "last_seen": view.last_seen or None,
        "seconds_since_seen": round(now_wall - view.last_seen, 3) if view.last_seen else None,
        "last_error": view.last_error,
        "version": view.version,
        "tags": view.tags,
        "models": [
            {"name": m.name, "size": m.size, "digest": m.digest, "details": m.details}
            for m in view.models.values()
        ],
        "loaded": [
            {
                "name": m.name,
                "size": m.size,
                "size_vram": m.size_vram,
                "context_length": m.context_length,
                "expires_at": m.expires_at,
            }
            for m in view.loaded.values()
        ],
        "resources": {
            "num_parallel": view.num_parallel,
            "num_parallel_source": parallel_source,
            "max_loaded_models": view.max_loaded_models,
            "cpu_count": view.cpu_count,
            "cpu_percent": view.cpu_percent,
            "ram_total": view.ram_total,
            "ram_available": view.ram_available,
            "vram_total": view.vram_total,
            "vram_used": view.vram_used,
            "gpus": view.gpus,
        },
        "queue": {"in_flight": view.in_flight, "in_flight_by_model": view.in_flight_by_model},
    }
    queued = getattr(view, "queued_by_model", None)
    if queued is not None:
        entry["queue"]["queued_by_model"] = queued
    if record is not None:
        machine = record.machine
        entry["resources"].update(
            ram_pressure=machine.ram_pressure,
            swap_used=machine.swap_used,
            disk_total=machine.disk_total,
            disk_free=machine.disk_free,
        )
        entry["heartbeat"] = {
            "agent_version": record.agent_version,
            "payload_version": record.payload_version,
            "interval": record.interval,
            "seconds_since": round(now - record.heartbeat_at, 3),
            "missed": record.missed(now),
            "beats": record.beats,
            "live": record.live,
            "agent_url": record.url,
            "draining_requested": record.draining,
        }
    return entry


def _summary(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    states = {"online": 0, "degraded": 0, "offline": 0, "draining": 0, "unknown": 0}
    for entry in nodes:
        states[entry["state"]] = states.get(entry["state"], 0) + 1
    serving = [n for n in nodes if n["state"] in ("online", "draining")]
    res = [n["resources"] for n in serving]
    return {
        "nodes": len(nodes),
        **states,
        "agents": sum(1 for n in nodes if n["agent"]),
        "models": len({m["name"] for n in serving for m in n["models"]}),
        "loaded": sum(len(n["loaded"]) for n in serving),
        "in_flight": sum(n["queue"]["in_flight"] for n in nodes),
        "ram_total": sum(r["ram_total"] for r in res),
        "ram_available": sum(r["ram_available"] for r in res),
        "vram_total": sum(r["vram_total"] for r in res),
        "vram_used": sum(r["vram_used"] for r in res),
    }


ROUTES = [heartbeat, status, drain, undrain]
