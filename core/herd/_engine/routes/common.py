"""Helpers every route module shares: reading bodies, ids, rendering replies."""

from __future__ import annotations

import os
import time
from typing import Any, TypeVar

from litestar import Request, Response
from litestar.exceptions import HTTPException

from herd._engine.gateway import Gateway
from herd._engine.relay import Relay
from herd._engine.scheduling.scheduler import Attempt
from herd.errors import HerdError
from herd.interfaces import InferenceRequest
from herd.protocol.ollama import OllamaDecodeError, decode_request
from herd.trace import RequestTrace

T = TypeVar("T")
JSON = "application/json; charset=utf-8"


def gateway_of(request: Request[Any, Any, Any]) -> Gateway:
    return request.app.state.gateway


def new_request_id() -> str:
    return os.urandom(8).hex()


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


def client_of(request: Request[Any, Any, Any]) -> str:
    client = request.scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""


def record_rejection(gateway: Gateway, request: InferenceRequest, error: HerdError) -> None:
    """Leave a trace for a request that never reached a node."""
    now = time.time()
    gateway.finish(
        RequestTrace(
            request_id=request.request_id,
            api=request.api,
            endpoint=request.endpoint,
            kind=request.kind,
            model=request.model,
            status="rejected" if error.status < 500 else "failed",
            http_status=error.status,
            error=error.message,
            received_at=request.received_at,
            done_at=now,
            latency_ms=(now - request.received_at) * 1000.0,
            tags=request.tags,
            client=request.client,
            stream=request.stream,
            attempts=error.attempts,
            retries=max(0, len(error.attempts) - 1),
            excluded_nodes=[a.node for a in error.attempts],
            traceparent=request.traceparent,
            api_key=request.api_key,
        )
    )


async def open_attempt(
    gateway: Gateway, request: InferenceRequest, capability: str = "text"
) -> Attempt:
    """Open the request on the best node, leaving a trace if nothing could serve it."""
    try:
        return await gateway.scheduler.open(request, capability)
    except HerdError as error:
        record_rejection(gateway, request, error)
        raise


def render_whole(relay: Relay, transform: Any = None) -> Response[bytes]:
    """A reply that is not a stream: the node's whole body (or its 4xx error), relayed."""
    reply = relay.attempt.reply
    body = reply.first
    if transform is not None and body:
        body = transform(body)
    if reply.status >= 400:
        relay.done("failed", body.decode("utf-8", "replace")[:500], None)
    else:
        relay.done("completed", "", body)
    return Response(
        content=body,
        status_code=reply.status,
        media_type=reply.content_type if body else None,
        headers=relay.headers(),
    )
