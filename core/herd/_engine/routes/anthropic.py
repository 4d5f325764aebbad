"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Decoded and translated by the pure codecs in :mod:`herd.protocol.anthropic` and friends,
routed like an Ollama chat, answered as a ``message`` or Anthropic's SSE events. Errors on
these paths take Anthropic's shape (see ``render_error`` in the app).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post

from herd._engine.routes.common import JSON, exchange_for, read_body
from herd._engine.routes.translated import drop_unsupported_think, render, take_canonical
from herd.errors import HerdError
from herd.protocol.anthropic import (
    AnthropicRequestError,
    MessagesRequest,
    decode_anthropic,
    error_body,
)
from herd.protocol.anthropic_replies import MessageStream, message_reply, new_message_id
from herd.protocol.anthropic_requests import (
    check_messages,
    estimate_input_tokens,
    messages_to_ollama,
)

__all__ = ["ROUTES"]


def _parse(body: bytes, need_max_tokens: bool) -> MessagesRequest:
    try:
        parsed = decode_anthropic(body)
        check_messages(parsed, need_max_tokens=need_max_tokens)
        return parsed
    except AnthropicRequestError as exc:
        raise HerdError(400, exc.message) from None


def _user(metadata: dict[str, Any] | None) -> str | None:
    user = (metadata or {}).get("user_id")
    return user if isinstance(user, str) else None


@post("/v1/messages", status_code=200)
async def create_message(request: Request[Any, Any, Any]) -> Response[Any]:
    """A Messages request, streamed (SSE) or not, served by a node's ``/api/chat``."""
    exchange = exchange_for(request, "anthropic", "chat")
    try:
        parsed = _parse(await read_body(request), need_max_tokens=True)
        key = exchange.resolve(parsed.model)
        try:
            body = messages_to_ollama(parsed, key)
        except AnthropicRequestError as exc:
            raise HerdError(400, exc.message) from None
        metadata = {k: v for k, v in (parsed.metadata or {}).items() if k != "user_id"}
        canonical = take_canonical(
            exchange,
            body,
            metadata=metadata or None,
            user=_user(parsed.metadata),
            fallback_models=parsed.fallback_models,
        )
    except HerdError as error:  # the client's mistake: traced as rejected
        raise exchange.reject(error) from None
    drop_unsupported_think(exchange.gateway, canonical)
    await exchange.open()
    model, message_id = parsed.model, new_message_id()
    translator = None
    if canonical.stream:
        translator = MessageStream(model, canonical.prompt_tokens, message_id)
    return render(
        exchange, lambda reply: message_reply(reply, model, message_id), error_body, translator
    )


@post("/v1/messages/count_tokens", status_code=200)
async def count_tokens(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``{"input_tokens": N}``: the router's estimate (Ollama has no tokenizer endpoint)."""
    parsed = _parse(await read_body(request), need_max_tokens=False)
    count = estimate_input_tokens(parsed)
    return Response(msgspec.json.encode({"input_tokens": count}), media_type=JSON)


ROUTES = [create_message, count_tokens]
