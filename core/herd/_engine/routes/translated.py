"""What the translated chat fronts share (Anthropic Messages, OpenAI Responses).

Each such route decodes its protocol's request with a pure codec, builds the canonical
(Ollama-shaped) request here, opens it on a node, and sends the node's answer back through
its codec: whole, or as SSE events from a per-stream translator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from litestar import Request, Response
from litestar.response import Stream

from herd._engine.auth import api_key_name
from herd._engine.relay import Relay
from herd._engine.request_hints import describe_request
from herd._engine.routes.common import JSON, client_of, new_request_id
from herd.errors import HerdError
from herd.interfaces import InferenceRequest

__all__ = [
    "SSE",
    "StreamTranslator",
    "canonical_chat",
    "drop_unsupported_think",
    "node_error",
    "streamed",
    "whole",
]

SSE = "text/event-stream"
_decode_error = msgspec.json.Decoder(dict[str, Any]).decode


class StreamTranslator(Protocol):
    def feed(self, line: bytes) -> bytes: ...

    def error_frame(self, message: str) -> bytes: ...


def canonical_chat(
    request: Request[Any, Any, Any],
    api: str,
    model: str,
    key: str,
    body: dict[str, Any],
    tags: list[str],
    received: float,
) -> InferenceRequest:
    """The canonical chat request for a body a codec produced."""
    num_ctx = (body.get("options") or {}).get("num_ctx")
    canonical = InferenceRequest(
        api=api,
        endpoint="chat",
        kind="text",
        model=model,
        model_key=key,
        body=body,
        stream=bool(body.get("stream")),
        num_ctx=num_ctx if isinstance(num_ctx, int) else None,
        tags=tags,
        api_key=api_key_name(request),
        request_id=new_request_id(),
        received_at=received,
        client=client_of(request),
        traceparent=request.headers.get("traceparent", ""),
    )
    describe_request(canonical, body, request.headers)
    return canonical


def drop_unsupported_think(gateway: Any, request: InferenceRequest) -> None:
    """Drop ``think: true`` when every node that lists the model says it cannot think.

    Anthropic's clients ask for thinking by habit (their models all can); a local model that
    cannot would refuse the whole request (Ollama answers 400), so it answers without.
    """
    if request.body.get("think") is not True:
        return
    known = [
        entry.capabilities
        for view in gateway.nodes()
        if (entry := view.models.get(request.model_key)) is not None and entry.capabilities
    ]
    if known and not any("thinking" in capabilities for capabilities in known):
        del request.body["think"]
        request.notes.append(f"thinking dropped: {request.model_key} does not think")


def node_error(body: bytes, status: int) -> str:
    """The message of a node's error body (Ollama's or OpenAI's shape, or plain text)."""
    try:
        error = _decode_error(body).get("error")
    except (msgspec.DecodeError, msgspec.ValidationError):
        error = None
    if isinstance(error, str) and error:
        return error
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return body.decode("utf-8", "replace").strip()[:500] or f"the node answered {status}"


def whole(
    relay: Relay,
    translate: Callable[[bytes], bytes],
    render_error: Callable[[int, str], bytes],
) -> Response[bytes]:
    """A non-streamed answer: the node's object translated, or its 4xx in the protocol."""
    reply = relay.attempt.reply
    body = reply.first
    if reply.status >= 400:
        message = node_error(body, reply.status)
        relay.done("failed", message[:500], None)
        return Response(
            render_error(reply.status, message),
            status_code=reply.status,
            media_type=JSON,
            headers=relay.headers(),
        )
    try:
        out = translate(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        relay.done("failed", "unreadable reply from the node", None)
        raise HerdError(502, f"node {relay.attempt.node.name} sent an unreadable reply") from None
    relay.done("completed", "", body)
    return Response(out, media_type=JSON, headers=relay.headers())


def streamed(
    relay: Relay, translator: StreamTranslator, render_error: Callable[[int, str], bytes]
) -> Response[Any]:
    """A streamed answer: each node line through the translator, as SSE."""
    reply = relay.attempt.reply
    # No proxy between herd and the client should buffer the events (nginx honours this).
    headers = {**relay.headers(), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if reply.streaming:
        return Stream(
            relay.lines(translator.feed, translator.error_frame), media_type=SSE, headers=headers
        )
    if reply.status >= 400:
        return whole(relay, lambda body: body, render_error)
    # A node may answer a stream request with one object (a load-only request does).
    events = translator.feed(reply.first)
    relay.done("completed", "", reply.first)
    return Response(events, media_type=SSE, headers=headers)
