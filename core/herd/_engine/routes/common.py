"""Helpers every route module shares: reading bodies, ids, rendering replies."""

from __future__ import annotations

from typing import Any, TypeVar

from litestar import Request, Response
from litestar.exceptions import HTTPException

from herd._engine.exchange import Exchange
from herd._engine.gateway import Gateway
from herd.errors import HerdError
from herd.protocol.ollama import OllamaDecodeError, decode_request

T = TypeVar("T")
JSON = "application/json; charset=utf-8"


def gateway_of(request: Request[Any, Any, Any]) -> Gateway:
    # by key: State's attribute access fails (an AttributeError made and dropped) before
    # its __getattr__ looks in the dict, on every request
    return request.app.state["gateway"]


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The request body; 413 over the configured limit."""
    try:
        return await request.body()
    except HTTPException as exc:
        if exc.status_code == 413:
            limit = gateway_of(request).settings.limits.max_body_bytes
            raise HerdError(413, f"request body too large (limit {limit} bytes)") from None
        raise


def decode(body: bytes, struct: type[T]) -> T:
    try:
        return decode_request(body, struct)
    except OllamaDecodeError as exc:
        raise HerdError(400, str(exc)) from None


def exchange_for(
    request: Request[Any, Any, Any],
    api: str,
    endpoint: str,
    kind: str = "text",
    capability: str = "text",
) -> Exchange:
    """The Exchange that will own this request, started now (its ``received_at``)."""
    # (positional: a Python class called with keywords packs and unpacks a dict)
    return Exchange(gateway_of(request), request, api, endpoint, kind, capability)


def render_whole(exchange: Exchange) -> Response[bytes]:
    """A reply that is not a stream, relayed in Ollama's form (a node's 4xx as it is)."""
    reply = exchange.attempt.reply
    refused = exchange.refusal() is not None
    body = reply.first if refused else exchange.whole()
    return Response(
        content=body,
        status_code=reply.status,
        media_type=reply.content_type if body else None,
        headers=exchange.headers(),
    )
