"""Routing made visible: ``GET /fleet/explain`` and ``GET /fleet/queue``."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get

from herd._engine.routes.common import JSON, exchange_for, gateway_of
from herd.errors import HerdError

__all__ = ["ROUTES"]

_encode = msgspec.json.encode
_CAPABILITY = {"chat": "text", "generate": "text", "embed": "embed", "embeddings": "embed"}


def _int(request: Request[Any, Any, Any], name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise HerdError(400, f"query parameter {name} must be an integer") from None


@get("/fleet/explain", status_code=200)
async def explain(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The full ranking for a hypothetical request, without sending it.

    Query: ``model`` (required), ``endpoint`` (chat, generate, embed; default chat),
    ``num_ctx``, ``num_predict``, ``tokens`` (estimated prompt tokens), ``images``,
    ``session`` (a conversation key, as a ``session:`` tag would give).
    """
    model = request.query_params.get("model", "")
    if not model:
        raise HerdError(400, "model is required: /fleet/explain?model=NAME")
    endpoint = request.query_params.get("endpoint", "chat")
    if endpoint not in _CAPABILITY:
        raise HerdError(400, f"endpoint must be one of {', '.join(_CAPABILITY)}")
    session = request.query_params.get("session", "")
    capability = _CAPABILITY[endpoint]
    exchange = exchange_for(request, "ollama", endpoint, capability, capability)
    exchange.resolve(model)
    hypothetical = exchange.take(stream=True, num_ctx=_int(request, "num_ctx"))
    hypothetical.num_predict = _int(request, "num_predict")
    hypothetical.prompt_tokens = _int(request, "tokens") or 0
    hypothetical.images = _int(request, "images") or 0
    hypothetical.tags = [f"session:{session}"] if session else []
    body = exchange.explain()
    return Response(_encode(body), media_type=JSON)


@get("/fleet/queue", status_code=200)
async def queue(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Per node and model: pending, in flight, done, failed and the concurrency used."""
    scheduler = gateway_of(request).scheduler
    body = {
        "nodes": scheduler.queue_stats(),
        "held": scheduler.board.held,
        "reaped": scheduler.reaped,
    }
    return Response(_encode(body), media_type=JSON)


ROUTES = [explain, queue]
