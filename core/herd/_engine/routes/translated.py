"""What the translated fronts share (OpenAI, Anthropic Messages, OpenAI Responses).

Each such route decodes its protocol's request with a pure codec, hands the canonical
(Ollama-shaped) body to its Exchange, and renders the node's answer through its codec:
whole, or as SSE events from a per-stream translator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from litestar import Response

from herd._engine.exchange import Exchange
from herd._engine.routes.common import JSON
from herd._engine.streaming import RelayStream
from herd.interfaces import InferenceRequest
from herd.names import normalize_model_name
from herd.protocol.ollama import option_int

__all__ = [
    "SSE",
    "StreamTranslator",
    "drop_unsupported_think",
    "render",
    "take_canonical",
]

SSE = "text/event-stream"
# No proxy between herd and the client should buffer the events (nginx honours this).
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class StreamTranslator(Protocol):
    def feed(self, line: bytes) -> bytes: ...

    def error_frame(self, message: str) -> bytes: ...


def take_canonical(
    exchange: Exchange,
    body: dict[str, Any],
    *,
    metadata: Any = None,
    user: str | None = None,
    fallback_models: list[str] | None = None,
) -> InferenceRequest:
    """Hand a codec's canonical body (it names the resolved model) to the exchange."""
    num_ctx = option_int((body.get("options") or {}).get("num_ctx"))
    request = exchange.take(
        body=body,
        hints=body,
        stream=bool(body.get("stream")),
        num_ctx=num_ctx,
        metadata=metadata,
        user=user,
        body_names_model=True,
    )
    if fallback_models:
        request.fallback_models = [normalize_model_name(name) for name in fallback_models]
    return request


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


def render(
    exchange: Exchange,
    translate: Callable[[bytes], bytes],
    render_error: Callable[[int, str], bytes],
    stream: StreamTranslator | None = None,
) -> Response[Any]:
    """The node's answer in the client's protocol: its 4xx as an error, whole, or SSE."""
    headers = exchange.headers()
    status = exchange.attempt.reply.status if exchange.attempt is not None else 502
    message = exchange.refusal()
    if message is not None:
        return Response(
            render_error(status, message), status_code=status, media_type=JSON, headers=headers
        )
    if stream is None:
        return Response(exchange.whole(translate), media_type=JSON, headers=headers)
    headers.update(_SSE_HEADERS)
    if exchange.streaming:
        events = exchange.stream(stream.feed, stream.error_frame)
        return RelayStream(events, SSE, headers, None, exchange)  # (positional: see ollama's)
    # A node may answer a stream request with one object (a load-only request does).
    return Response(exchange.whole(stream.feed), media_type=SSE, headers=headers)
