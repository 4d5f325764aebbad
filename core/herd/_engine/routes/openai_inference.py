"""The OpenAI inference endpoints: chat completions, legacy completions, embeddings.

Each request is decoded into its OpenAI Struct, translated into the canonical
(Ollama-shaped) body, routed like an Ollama request, and the node's answer is translated
back: a whole object for ``stream: false`` (the node is asked for one too), SSE events
through a per-stream translator otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from litestar import Request, Response, post

from herd._engine.exchange import Exchange
from herd._engine.routes.common import exchange_for, read_body
from herd._engine.routes.translated import render, take_canonical
from herd.errors import HerdError
from herd.protocol.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    OpenAIRequestError,
    decode_openai,
    error_body,
)
from herd.protocol.openai_replies import chat_completion, embedding_list, text_completion
from herd.protocol.openai_requests import (
    chat_to_ollama,
    completion_to_ollama,
    embedding_format,
    embedding_to_ollama,
)
from herd.protocol.openai_stream import ChatStream, CompletionStream

__all__ = ["ROUTES"]

T = TypeVar("T")


async def _intake(
    exchange: Exchange,
    http: Request[Any, Any, Any],
    struct: type[T],
    convert: Callable[[Any, str], dict[str, Any]],
) -> tuple[T, dict[str, Any]]:
    """Read and decode, resolve the model, translate, take the request; a mistake is traced."""
    try:
        return _take(exchange, await read_body(http), struct, convert)
    except HerdError as error:
        raise exchange.reject(error) from None


def _take(
    exchange: Exchange,
    body: bytes,
    struct: type[T],
    convert: Callable[[Any, str], dict[str, Any]],
) -> tuple[T, dict[str, Any]]:
    try:
        parsed: Any = decode_openai(body, struct)
        if not parsed.model:
            raise HerdError(400, "you must provide a model parameter", param="model")
        canonical = convert(parsed, exchange.resolve(parsed.model))
    except OpenAIRequestError as exc:
        raise HerdError(400, exc.message, param=exc.param) from None
    take_canonical(
        exchange,
        canonical,
        metadata=parsed.metadata,
        user=parsed.user,
        fallback_models=getattr(parsed, "fallback_models", None),
    )
    return parsed, canonical


def _include_usage(parsed: ChatCompletionRequest | CompletionRequest) -> bool:
    return bool(parsed.stream_options and parsed.stream_options.include_usage)


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
    """OpenAI chat completions, streamed (SSE) or not, served by a node's ``/api/chat``."""
    exchange = exchange_for(request, "openai", "chat")
    parsed, body = await _intake(exchange, request, ChatCompletionRequest, chat_to_ollama)
    await exchange.open()
    model = parsed.model
    reasoning = exchange.gateway.settings.openai.reasoning_field
    stream = None
    if body.get("stream"):
        usage = _include_usage(parsed)
        stream = ChatStream(model, include_usage=usage, reasoning_field=reasoning)
    return render(
        exchange, lambda reply: chat_completion(reply, model, reasoning), error_body, stream
    )


@post("/v1/completions", status_code=200)
async def completions(request: Request[Any, Any, Any]) -> Response[Any]:
    """Legacy prompt completions, streamed or not, served by a node's ``/api/generate``."""
    exchange = exchange_for(request, "openai", "generate")
    parsed, body = await _intake(exchange, request, CompletionRequest, completion_to_ollama)
    await exchange.open()
    model = parsed.model
    echo = body["prompt"] if parsed.echo else ""
    stream = None
    if body.get("stream"):
        stream = CompletionStream(model, include_usage=_include_usage(parsed), echo=echo)
    return render(exchange, lambda reply: text_completion(reply, model, echo), error_body, stream)


@post("/v1/embeddings", status_code=200)
async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
    """Embeddings (float or base64), served by a node's ``/api/embed``."""
    exchange = exchange_for(request, "openai", "embed", "embed", "embed")
    parsed, _ = await _intake(exchange, request, EmbeddingRequest, embedding_to_ollama)
    await exchange.open()
    encoding = embedding_format(parsed)
    return render(exchange, lambda reply: embedding_list(reply, parsed.model, encoding), error_body)


ROUTES = [chat_completions, completions, embeddings]
