"""The Ollama inference endpoints: chat, generate, embed, embeddings."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from herd._engine.intake import split_metadata
from herd._engine.routes.common import decode, exchange_for, read_body, render_whole
from herd._engine.streaming import RelayStream as Stream
from herd.errors import HerdError
from herd.protocol.ollama import (
    ChatRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    is_unload,
    option_int,
)

NDJSON = "application/x-ndjson"


async def _serve(
    request: Request[Any, Any, Any],
    endpoint: str,
    struct: type,
    kind: str,
    streams: bool,
    empty_model: tuple[int, str],
) -> Response[Any]:
    exchange = exchange_for(request, "ollama", endpoint, kind, kind)
    try:
        body = await read_body(request)
        parsed = decode(body, struct)
        if not parsed.model:
            raise HerdError(*empty_model)  # (a new one each time: a raise changes it)
        exchange.resolve(parsed.model)
        data, metadata = split_metadata(body)  # (None, None) unless the body has metadata
        options = getattr(parsed, "options", None)
        exchange.take(
            body=data,  # re-encoded only when changed: else the client's bytes go as they are
            raw=body,
            hints=parsed,
            stream=streams and parsed.stream is not False,
            num_ctx=option_int(options.num_ctx) if options is not None else None,
            metadata=metadata,
        )
        unloading = streams and is_unload(parsed)  # (streams: chat and generate)
    except HerdError as error:  # the client's mistake: traced as rejected
        raise exchange.reject(error) from None
    attempt = await exchange.open()
    if unloading:  # `ollama stop`: the model leaves the fleet's memory, not one node's
        request = exchange.request
        assert request is not None  # (take built it)
        others = await exchange.gateway.unload_everywhere(request.model_key, attempt.node.name)
        if others:
            request.notes.append(f"unloaded from {', '.join(others)} too")
    if not exchange.streaming:
        return render_whole(exchange)
    headers = exchange.headers()
    headers["X-Accel-Buffering"] = "no"  # (a proxy such as nginx passes each line as it comes)
    # (positional: a Python class called with keywords packs and unpacks a dict)
    return Stream(exchange.stream(blocks=True), NDJSON, headers, None, exchange)


@post("/api/chat", status_code=200)
async def chat(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(request, "chat", ChatRequest, "text", True, (400, "model is required"))


@post("/api/generate", status_code=200)
async def generate(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(
        request, "generate", GenerateRequest, "text", True, (404, "model '' not found")
    )


@post("/api/embed", status_code=200)
async def embed(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(request, "embed", EmbedRequest, "embed", False, (400, "model is required"))


@post("/api/embeddings", status_code=200)
async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(
        request,
        "embeddings",
        EmbeddingsRequest,
        "embed",
        False,
        (400, "model is required"),
    )


ROUTES = [chat, generate, embed, embeddings]
