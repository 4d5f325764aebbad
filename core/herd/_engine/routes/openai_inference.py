"""The OpenAI inference endpoints: chat completions, legacy completions, embeddings.

Each request is decoded into its OpenAI Struct, translated into the canonical
(Ollama-shaped) body, routed like an Ollama request, and the node's answer is translated
back: a whole object for ``stream: false`` (the node is asked for one too), SSE events
through a per-stream translator otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, post
from litestar.response import Stream

from herd._engine.auth import api_key_name
from herd._engine.relay import Relay
from herd._engine.request_hints import describe_request
from herd._engine.routes.common import (
    JSON,
    client_of,
    gateway_of,
    new_request_id,
    open_attempt,
    read_body,
)
from herd._engine.routes.workload_embed import open_embed
from herd._engine.tagging import request_tags
from herd.errors import HerdError
from herd.interfaces import InferenceRequest
from herd.names import normalize_model_name
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

SSE = "text/event-stream"
T = TypeVar("T")
_decode_error = msgspec.json.Decoder(dict[str, Any]).decode


def _parse(body: bytes, struct: type[T]) -> T:
    try:
        return decode_openai(body, struct)
    except OpenAIRequestError as exc:
        raise HerdError(400, exc.message, param=exc.param) from None


def _translate(convert: Callable[[Any, str], dict[str, Any]], parsed: Any, key: str) -> Any:
    try:
        return convert(parsed, key)
    except OpenAIRequestError as exc:
        raise HerdError(400, exc.message, param=exc.param) from None


def _required_model(model: str) -> str:
    if not model:
        raise HerdError(400, "you must provide a model parameter", param="model")
    return model


def _canonical(
    request: Request[Any, Any, Any],
    endpoint: str,
    kind: str,
    model: str,
    key: str,
    body: dict[str, Any],
    tags: list[str],
    received: float,
    fallback_models: list[str] | None = None,
) -> InferenceRequest:
    num_ctx = (body.get("options") or {}).get("num_ctx")
    canonical = InferenceRequest(
        api="openai",
        endpoint=endpoint,
        kind=kind,
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
    if fallback_models:
        canonical.fallback_models = [normalize_model_name(name) for name in fallback_models]
    return canonical


def _whole(relay: Relay, translate: Callable[[bytes], bytes]) -> Response[bytes]:
    """A non-streamed answer: the node's object translated, or its 4xx as OpenAI's error."""
    reply = relay.attempt.reply
    body = reply.first
    if reply.status >= 400:
        message = _node_error(body, reply.status)
        relay.done("failed", message[:500], None)
        return Response(
            error_body(reply.status, message),
            status_code=reply.status,
            media_type=JSON,
            headers=relay.headers(),
        )
    try:
        out = translate(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        relay.done("failed", f"unreadable reply from the node: {exc}", None)
        raise HerdError(502, f"node {relay.attempt.node.name} sent an unreadable reply") from None
    relay.done("completed", "", body)
    return Response(out, media_type=JSON, headers=relay.headers())


def _streamed(relay: Relay, translator: ChatStream | CompletionStream) -> Response[Any]:
    reply = relay.attempt.reply
    # No proxy between herd and the client should buffer the events (nginx honours this).
    headers = {**relay.headers(), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if reply.streaming:
        lines = relay.lines(translator.feed, translator.error_frame)
        return Stream(lines, media_type=SSE, headers=headers)
    if reply.status >= 400:
        return _whole(relay, lambda body: body)
    # A node may answer a stream request with one object (a load-only request does).
    events = translator.feed(reply.first)
    relay.done("completed", "", reply.first)
    return Response(events, media_type=SSE, headers=headers)


def _node_error(body: bytes, status: int) -> str:
    try:
        error = _decode_error(body).get("error")
    except (msgspec.DecodeError, msgspec.ValidationError):
        error = None
    if isinstance(error, str) and error:
        return error
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return body.decode("utf-8", "replace").strip()[:500] or f"the node answered {status}"


def _include_usage(parsed: ChatCompletionRequest | CompletionRequest) -> bool:
    return bool(parsed.stream_options and parsed.stream_options.include_usage)


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
    """OpenAI chat completions, streamed (SSE) or not, served by a node's ``/api/chat``."""
    received = time.time()
    gateway = gateway_of(request)
    parsed = _parse(await read_body(request), ChatCompletionRequest)
    model = _required_model(parsed.model)
    tags = request_tags(request, parsed.metadata, parsed.user)
    key = gateway.resolve_model(model, "openai")
    body = _translate(chat_to_ollama, parsed, key)
    canonical = _canonical(
        request, "chat", "text", model, key, body, tags, received, parsed.fallback_models
    )
    attempt = await open_attempt(gateway, canonical, "text")
    relay = Relay(gateway, canonical, attempt)
    reasoning = gateway.settings.openai.reasoning_field
    if not canonical.stream:
        return _whole(relay, lambda reply: chat_completion(reply, model, reasoning))
    translator = ChatStream(model, include_usage=_include_usage(parsed), reasoning_field=reasoning)
    return _streamed(relay, translator)


@post("/v1/completions", status_code=200)
async def completions(request: Request[Any, Any, Any]) -> Response[Any]:
    """Legacy prompt completions, streamed or not, served by a node's ``/api/generate``."""
    received = time.time()
    gateway = gateway_of(request)
    parsed = _parse(await read_body(request), CompletionRequest)
    model = _required_model(parsed.model)
    tags = request_tags(request, parsed.metadata, parsed.user)
    key = gateway.resolve_model(model, "openai")
    body = _translate(completion_to_ollama, parsed, key)
    canonical = _canonical(
        request, "generate", "text", model, key, body, tags, received, parsed.fallback_models
    )
    attempt = await open_attempt(gateway, canonical, "text")
    relay = Relay(gateway, canonical, attempt)
    echo = body["prompt"] if parsed.echo else ""
    if not canonical.stream:
        return _whole(relay, lambda reply: text_completion(reply, model, echo))
    translator = CompletionStream(model, include_usage=_include_usage(parsed), echo=echo)
    return _streamed(relay, translator)


@post("/v1/embeddings", status_code=200)
async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
    """Embeddings (float or base64), served by a node's ``/api/embed``."""
    received = time.time()
    gateway = gateway_of(request)
    parsed = _parse(await read_body(request), EmbeddingRequest)
    model = _required_model(parsed.model)
    tags = request_tags(request, parsed.metadata, parsed.user)
    key = gateway.resolve_model(model, "openai")
    body = _translate(embedding_to_ollama, parsed, key)
    encoding = embedding_format(parsed)
    canonical = _canonical(request, "embed", "embed", model, key, body, tags, received)
    attempt = await open_embed(gateway, canonical)  # long input lists go out in batches
    relay = Relay(gateway, canonical, attempt)
    return _whole(relay, lambda reply: embedding_list(reply, model, encoding))


ROUTES = [chat_completions, completions, embeddings]
