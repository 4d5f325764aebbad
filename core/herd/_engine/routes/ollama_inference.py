"""The Ollama inference endpoints: chat, generate, embed, embeddings."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.response import Stream

from herd._engine.auth import api_key_name
from herd._engine.relay import Relay, rename_model
from herd._engine.request_hints import describe_request
from herd._engine.routes.common import (
    client_of,
    decode,
    gateway_of,
    new_request_id,
    open_attempt,
    read_body,
    render_whole,
)
from herd._engine.routes.workload_embed import open_embed
from herd._engine.tagging import request_tags, split_metadata
from herd.errors import HerdError
from herd.interfaces import InferenceRequest
from herd.names import normalize_model_name
from herd.protocol.ollama import ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest

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
    data, metadata = split_metadata(body)  # (None, None) unless the body has metadata
    tags = request_tags(request, metadata)
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
        tags=tags,
        api_key=api_key_name(request),
        request_id=new_request_id(),
        received_at=received,
        client=client_of(request),
        traceparent=request.headers.get("traceparent", ""),
    )
    describe_request(canonical, parsed, request.headers)
    transform = None
    if key != normalize_model_name(model):
        data = data if data is not None else _decode_dict(body)
        data["model"] = key
        transform = rename_model(model, key)
    if data is not None:  # re-encoded only when changed: else the client's bytes go as they are
        canonical.body = data
        canonical.raw_body = None
    if kind == "embed":  # long input lists go out in batches, spread over the nodes
        attempt = await open_embed(gateway, canonical)
    else:
        attempt = await open_attempt(gateway, canonical, "text")
    relay = Relay(gateway, canonical, attempt)
    if not attempt.reply.streaming:
        return render_whole(relay, transform)
    lines = relay.lines(transform, blocks=True)
    return Stream(lines, media_type=NDJSON, headers=relay.headers())


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
