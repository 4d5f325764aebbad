"""OpenAI's Responses API: ``POST /v1/responses``.

Decoded and translated by :mod:`herd.protocol.responses` and
:mod:`herd.protocol.responses_replies`, routed like an Ollama chat. Finished responses are
kept in a bounded, expiring :class:`~herd.protocol.responses_store.ResponseStore` (one per
app) so a later request can continue them with ``previous_response_id``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post

from herd._engine.routes.common import exchange_for, read_body
from herd._engine.routes.translated import render, take_canonical
from herd.errors import HerdError
from herd.protocol.openai import OpenAIRequestError, error_body
from herd.protocol.responses import ResponsesRequest, decode_responses, responses_to_ollama
from herd.protocol.responses_replies import (
    ResponseStream,
    new_response_id,
    response_reply,
    response_shell,
)
from herd.protocol.responses_store import ResponseStore

__all__ = ["ROUTES"]


def _store_of(request: Request[Any, Any, Any]) -> ResponseStore:
    state = request.app.state
    store = state.get("responses_store")
    if store is None:
        store = state["responses_store"] = ResponseStore()
    return store


def _history(store: ResponseStore, parsed: ResponsesRequest) -> list[dict[str, Any]]:
    previous = parsed.previous_response_id
    if not previous:
        return []
    history = store.get(previous)
    if history is None:
        raise HerdError(
            404,
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return history


def _echo(parsed: ResponsesRequest) -> dict[str, Any]:
    tools = [msgspec.to_builtins(tool) for tool in parsed.tools or []]
    return {
        "instructions": parsed.instructions,
        "max_output_tokens": parsed.max_output_tokens,
        "previous_response_id": parsed.previous_response_id,
        "temperature": parsed.temperature,
        "top_p": parsed.top_p,
        "tools": tools,
        "tool_choice": parsed.tool_choice,
        "parallel_tool_calls": parsed.parallel_tool_calls,
        "metadata": parsed.metadata,
        "store": parsed.store,
        "user": parsed.user,
    }


def _render_error(status: int, message: str) -> bytes:
    return error_body(status, message)


@post("/v1/responses", status_code=200)
async def create_response(request: Request[Any, Any, Any]) -> Response[Any]:
    """A Responses request, streamed (SSE) or not, served by a node's ``/api/chat``."""
    exchange = exchange_for(request, "responses", "chat")
    store = _store_of(request)
    try:
        try:
            parsed = decode_responses(await read_body(request))
            history = _history(store, parsed)
            body = responses_to_ollama(parsed, exchange.resolve(parsed.model), history)
        except OpenAIRequestError as exc:
            raise HerdError(400, exc.message, param=exc.param) from None
        canonical = take_canonical(
            exchange,
            body,
            metadata=parsed.metadata,
            user=parsed.user,
            fallback_models=parsed.fallback_models,
        )
    except HerdError as error:  # the client's mistake: traced as rejected
        raise exchange.reject(error) from None
    await exchange.open()
    response_id = new_response_id()
    shell = response_shell(response_id, parsed.model, _echo(parsed))
    # What a later turn continues from: the conversation without the instructions.
    sent = body["messages"][1:] if parsed.instructions else body["messages"]
    keep = parsed.store is not False

    def remember(reply: dict[str, Any]) -> None:
        if keep:
            store.put(response_id, [*sent, reply])

    def translate(reply: Any) -> bytes:  # the node's bytes, or a backend's object
        out, assistant = response_reply(reply, shell)
        remember(assistant)
        return out

    stream = ResponseStream(shell, remember) if canonical.stream else None
    return render(exchange, translate, _render_error, stream)


ROUTES = [create_response]
