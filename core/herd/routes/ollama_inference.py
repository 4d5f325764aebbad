"""The Ollama inference endpoints: chat, generate, embed, embeddings."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.response import Stream

from herd.errors import HerdError
from herd.interfaces import InferenceRequest
from herd.names import normalize_model_name
from herd.protocol.ollama import ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest
from herd.routes.common import (
    client_of,
    decode,
    gateway_of,
    new_request_id,
    open_attempt,
    read_body,
    render_whole,
)
from herd.streaming import Relay, rename_model

NDJSON = "application/x-ndjson"
_decode_dict = msgspec.json.Decoder(dict).decode


async def _serve(
    request: Request[Any, Any, Any],
    endpoint: str,
    struct: type,
    kind: str,
    streams: bool,
    empty_model: HerdError,
) -> Response[Any]:
    received = time.time()
    gateway = gateway_of(request)
    body = await read_body(request)
    parsed = decode(body, struct)
    model = parsed.model
    if not model:
        raise empty_model
    key = gateway.resolve_model(model, "ollama")
    stream = streams and parsed.stream is not False
    options = getattr(parsed, "options", None)
    canonical = InferenceRequest(
        api="ollama",
        endpoint=endpoint,
        kind=kind,
        model=model,
        model_key=key,
        body={},
        stream=stream,
        raw_body=body,
        num_ctx=options.num_ctx if options is not None else None,
        request_id=new_request_id(),
        received_at=received,
        client=client_of(request),
        traceparent=request.headers.get("traceparent", ""),
    )
    transform = None
    if key != normalize_model_name(model):
        data = _decode_dict(body)
        data["model"] = key
        canonical.body = data
        canonical.raw_body = None
        transform = rename_model(model, key)
    attempt = await open_attempt(gateway, canonical, "embed" if kind == "embed" else "text")
    relay = Relay(gateway, canonical, attempt)
    if not attempt.reply.streaming:
        return render_whole(relay, transform)
    return Stream(relay.lines(transform), media_type=NDJSON, headers=relay.headers())


@post("/api/chat", status_code=200)
async def chat(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(
        request, "chat", ChatRequest, "text", True, HerdError(400, "model is required")
    )


@post("/api/generate", status_code=200)
async def generate(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(
        request, "generate", GenerateRequest, "text", True, HerdError(404, "model '' not found")
    )


@post("/api/embed", status_code=200)
async def embed(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(
        request, "embed", EmbedRequest, "embed", False, HerdError(400, "model is required")
    )


@post("/api/embeddings", status_code=200)
async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(
        request,
        "embeddings",
        EmbeddingsRequest,
        "embed",
        False,
        HerdError(400, "model is required"),
    )


ROUTES = [chat, generate, embed, embeddings]
