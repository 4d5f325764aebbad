"""The emulator as an OpenAI-compatible text server (``SimConfig(api="openai")``).

It then plays llama.cpp's server, vLLM or LM Studio: ``GET /v1/models`` (with vLLM's
``max_model_len``), ``POST /v1/chat/completions`` and ``POST /v1/completions``, streamed as
SSE or whole, ``POST /v1/embeddings``, and no ``/api/*`` at all. The answers are the very
tokens (and vectors) the Ollama mode would give (the same generation plan, pacing and injected
faults), re-framed with herd's own pure OpenAI codecs, so a test can compare what came back
through the router.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web
from herd.protocol.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    OpenAIRequestError,
    decode_openai,
)
from herd.protocol.openai_replies import chat_completion, embedding_list, text_completion
from herd.protocol.openai_requests import (
    chat_to_ollama,
    completion_to_ollama,
    embedding_format,
    embedding_to_ollama,
)
from herd.protocol.openai_stream import ChatStream, CompletionStream

from herd_sim.embed import serve_embed
from herd_sim.engine import ENGINE
from herd_sim.generation import Framing, inference_endpoint
from herd_sim.inference import serve_chat, serve_generate
from herd_sim.wire import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    SimError,
    decode_body,
    encode_line,
)

__all__ = ["add_openai_routes"]

SSE = "text/event-stream"
_encode = msgspec.json.encode


def _framing(translator: ChatStream | CompletionStream, whole: Any) -> Framing:
    def line(chunk: dict[str, Any]) -> bytes:
        return translator.feed(encode_line(chunk))

    def reply(aggregate: dict[str, Any]) -> web.Response:
        return web.Response(body=whole(_encode(aggregate)), content_type="application/json")

    return Framing(SSE, line, reply)


def _parse(raw: bytes, struct: type, convert: Any) -> tuple[Any, dict[str, Any]]:
    try:
        parsed = decode_openai(raw, struct)
        if not parsed.model:
            raise OpenAIRequestError("you must provide a model parameter", "model")
        return parsed, convert(parsed, parsed.model)
    except OpenAIRequestError as exc:
        raise SimError(400, exc.message) from None


def _include_usage(parsed: Any) -> bool:
    return bool(parsed.stream_options and parsed.stream_options.include_usage)


@inference_endpoint
async def chat_completions(request: web.Request, engine: Any) -> web.StreamResponse:
    started = time.perf_counter()
    parsed, body = _parse(await request.read(), ChatCompletionRequest, chat_to_ollama)
    translator = ChatStream(parsed.model, include_usage=_include_usage(parsed))
    framing = _framing(translator, lambda data: chat_completion(data, parsed.model))
    chat = decode_body(_encode(body), ChatRequest)
    return await serve_chat(request, engine, chat, started, framing)


@inference_endpoint
async def completions(request: web.Request, engine: Any) -> web.StreamResponse:
    started = time.perf_counter()
    parsed, body = _parse(await request.read(), CompletionRequest, completion_to_ollama)
    translator = CompletionStream(parsed.model, include_usage=_include_usage(parsed))
    framing = _framing(translator, lambda data: text_completion(data, parsed.model))
    generate = decode_body(_encode(body), GenerateRequest)
    return await serve_generate(request, engine, generate, started, framing)


@inference_endpoint
async def embeddings(request: web.Request, engine: Any) -> web.StreamResponse:
    started = time.perf_counter()
    parsed, body = _parse(await request.read(), EmbeddingRequest, embedding_to_ollama)
    encoding = embedding_format(parsed)

    def respond(reply: dict[str, Any]) -> web.Response:
        data = embedding_list(_encode(reply), parsed.model, encoding)
        return web.Response(body=data, content_type="application/json")

    embed = decode_body(_encode(body), EmbedRequest)
    return await serve_embed(request, engine, embed, started, respond)


async def models(request: web.Request) -> web.Response:
    """The models on disk, as vLLM lists them (with ``max_model_len``)."""
    data = [
        {
            "id": entry.display,
            "object": "model",
            "created": int(entry.modified_at.timestamp()),
            "owned_by": "herd-sim",
            "max_model_len": entry.model.context_length,
        }
        for entry in request.app[ENGINE].catalog.listing()
    ]
    return web.Response(
        body=_encode({"object": "list", "data": data}), content_type="application/json"
    )


def add_openai_routes(app: web.Application) -> None:
    """Serve OpenAI's text API (and nothing of Ollama's)."""
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
