"""The Ollama model-management endpoints: tags, ps, show, pull, delete, copy, version."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post, route
from litestar.response import Stream

import herd
from herd._engine.audit import audit
from herd._engine.fleet.registry import FleetNode
from herd._engine.gateway import Gateway
from herd._engine.routes.common import JSON, decode, gateway_of, read_body
from herd._engine.scheduling.auto_pull import no_pull_target
from herd.errors import HerdError
from herd.interfaces import NodeFailure, UpstreamReply
from herd.protocol.ollama import CopyRequest, ModelRequest, PullRequest, error_line

_encode = msgspec.json.encode
NDJSON = "application/x-ndjson"
ADMIN = {"herd_auth": "admin"}  # changes what nodes hold: herd._engine.auth checks it


@route("/api/tags", http_method=["GET", "HEAD"], status_code=200)
async def tags(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Every model on every online node, once each, with the nodes that have it."""
    entries: dict[str, dict[str, Any]] = {}
    for node in gateway_of(request).fleet.nodes.values():
        if node.view.status != "online":
            continue
        for key, model in node.view.models.items():
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = {**model.raw, "nodes": []}
            elif not entry.get("size") and model.raw.get("size"):
                # the same model on a node that knows its file (an Ollama node, where an
                # OpenAI-compatible server lists no size or digest): its details are shown
                entry = entries[key] = {**model.raw, "nodes": entry["nodes"]}
            entry["nodes"].append(node.name)
    models = sorted(entries.values(), key=lambda e: str(e.get("modified_at", "")), reverse=True)
    return Response(_encode({"models": models}), media_type=JSON)


@get("/api/ps", status_code=200)
async def ps(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Every loaded model on every online node, each with its node."""
    models = [
        {**loaded.raw, "node": node.name}
        for node in gateway_of(request).fleet.nodes.values()
        if node.view.status == "online"
        for loaded in node.view.loaded.values()
    ]
    models.sort(key=lambda e: str(e.get("expires_at", "")), reverse=True)
    return Response(_encode({"models": models}), media_type=JSON)


@route("/api/version", http_method=["GET", "HEAD"], status_code=200)
async def version(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The fleet's lowest Ollama version (what clients can rely on), herd's, each node's."""
    nodes = {
        n.name: n.view.version for n in gateway_of(request).fleet.nodes.values() if n.view.version
    }
    # Ollama's own versions only: an OpenAI-compatible node reports none ("openai")
    versions = [v for v in nodes.values() if v[:1].isdigit()]
    fleet_version = min(versions, key=_version_key) if versions else herd.__version__
    body = {"version": fleet_version, "herd_version": herd.__version__, "nodes": nodes}
    return Response(_encode(body), media_type=JSON)


def _version_key(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("-")[0].split("."):
        parts.append(int(piece) if piece.isdigit() else 0)
    return tuple(parts)


@post("/api/show", status_code=200)
async def show(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Model metadata, from an online node that has the model (one with it loaded first)."""
    gateway = gateway_of(request)
    parsed = decode(await read_body(request), ModelRequest)
    model = parsed.model_name
    if not model:
        raise HerdError(400, "model is required")
    key = gateway.resolve_model(model, "ollama")
    holders = sorted(_online_holders(gateway, key), key=lambda node: key not in node.view.loaded)
    problems = []
    for node in holders:
        entry = node.view.models.get(key)
        name = entry.name if entry is not None else key
        try:
            reply = await node.backend.show(name, verbose=bool(parsed.verbose))
        except NodeFailure as failure:  # this node cannot say: ask the next one
            problems.append(failure.message)
            continue
        response = _whole(node, reply)
        response.headers["X-Herd-Model"] = name
        return response
    if problems:
        raise HerdError(502, f"no node could describe {model}: {'; '.join(problems)}")
    raise HerdError(404, f"model '{model}' not found")


def _online_holders(gateway: Gateway, key: str) -> list[FleetNode]:
    """The online nodes that have the model (on disk or loaded)."""
    return [
        node
        for node in gateway.fleet.nodes.values()
        if node.view.status == "online" and node.view.has_model(key)
    ]


def _named_node(gateway: Gateway, request: Request[Any, Any, Any], named: str) -> FleetNode | None:
    name = named or request.headers.get("x-herd-node", "")
    if not name:
        return None
    node = gateway.fleet.nodes.get(name)
    if node is None:
        known = ", ".join(gateway.fleet.nodes) or "none"
        raise HerdError(404, f"node '{name}' not found (nodes: {known})")
    return node


def _require_node(
    gateway: Gateway, request: Request[Any, Any, Any], named: str, verb: str, model: str
) -> FleetNode:
    node = _named_node(gateway, request, named)
    if node is None:
        key = gateway.resolve_model(model, "ollama") if model else ""
        holders = [n.name for n in gateway.fleet.nodes.values() if key and n.view.has_model(key)]
        hint = f" (nodes that have it: {', '.join(holders)})" if holders else ""
        raise HerdError(
            400,
            f'{verb} needs a node: add "node": "<name>" to the body or an X-Herd-Node header{hint}',
        )
    return node


async def _forward(operation: Awaitable[UpstreamReply]) -> UpstreamReply:
    try:
        return await operation
    except NodeFailure as failure:
        if failure.status == 501:  # this kind of node cannot do it: the client's mistake
            raise HerdError(400, failure.message) from None
        if failure.not_found:
            raise HerdError(404, failure.message) from None
        raise HerdError(502, failure.message) from None


def _whole(node: FleetNode, reply: UpstreamReply) -> Response[bytes]:
    return Response(
        reply.first,
        status_code=reply.status,
        media_type=reply.content_type if reply.first else None,
        headers={"X-Herd-Node": node.name},
    )


@post("/api/pull", status_code=200, opt=ADMIN)
async def pull(request: Request[Any, Any, Any]) -> Response[Any]:
    """Pull onto the node named in the body or header, else onto the best node with room."""
    gateway = gateway_of(request)
    body = await read_body(request)
    parsed = decode(body, PullRequest)
    model = parsed.model_name
    if not model:
        raise HerdError(400, "model is required")
    node = _named_node(gateway, request, parsed.node) or _pull_target(gateway, model)
    audit("pull", request, model=model, node=node.name)
    reply = await _forward(node.backend.pull(model, stream=parsed.stream is not False))
    if not reply.streaming:
        await gateway.fleet.poll(node)
        return _whole(node, reply)

    async def lines() -> Any:
        polled = False
        try:
            pending = reply.first
            async for line in reply.rest():
                yield pending
                pending = line
            # poll before the last line, so a client that sees "success" also sees the model
            await gateway.fleet.poll(node)
            polled = True
            yield pending
        except Exception as exc:
            yield error_line(f"pull on node {node.name} failed: {exc}")
        finally:
            await reply.aclose()
            if not polled:  # detached: this generator may be ending inside a cancelled scope
                gateway.fleet.poll_soon(node)

    return Stream(
        lines(), media_type=NDJSON, headers={"X-Herd-Node": node.name, "X-Accel-Buffering": "no"}
    )


def _pull_target(gateway: Gateway, model: str) -> FleetNode:
    """An online node that has the model already, else the one auto-pull would choose
    (one known to hold it, then the most free memory)."""
    key = gateway.resolve_model(model, "ollama")
    holders = _online_holders(gateway, key)
    if holders:
        return holders[0]
    node = gateway.pull_target(key)
    if node is None:
        raise no_pull_target(gateway.fleet)
    return node


@delete("/api/delete", status_code=200, opt=ADMIN)
async def delete_model(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Delete a model from the node named in the body or header."""
    gateway = gateway_of(request)
    body = await read_body(request)
    parsed = decode(body, ModelRequest)
    if not parsed.model_name:
        raise HerdError(400, "model is required")
    node = _require_node(gateway, request, parsed.node, "delete", parsed.model_name)
    audit("delete", request, model=parsed.model_name, node=node.name)
    reply = await _forward(node.backend.delete(parsed.model_name))
    await gateway.fleet.poll(node)
    return _whole(node, reply)


@post("/api/copy", status_code=200, opt=ADMIN)
async def copy(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Copy a model on the node named in the body or header."""
    gateway = gateway_of(request)
    body = await read_body(request)
    parsed = decode(body, CopyRequest)
    if not parsed.source or not parsed.destination:
        raise HerdError(400, "source and destination are required")
    node = _require_node(gateway, request, parsed.node, "copy", parsed.source)
    audit("copy", request, model=parsed.source, to=parsed.destination, node=node.name)
    reply = await _forward(node.backend.copy(parsed.source, parsed.destination))
    await gateway.fleet.poll(node)
    return _whole(node, reply)


ROUTES = [tags, ps, version, show, pull, delete_model, copy]
