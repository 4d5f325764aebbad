"""``POST /api/embed`` and the legacy ``POST /api/embeddings``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from herd_sim.catalog import DiskModel
from herd_sim.engine import SimEngine
from herd_sim.generation import break_before_response, inference_endpoint
from herd_sim.scheduler import Lease, effective_num_ctx
from herd_sim.text import (
    count_tokens,
    embedding_vector,
    legacy_embedding_vector,
    normalise,
)
from herd_sim.wire import (
    EmbeddingsRequest,
    EmbedRequest,
    SimError,
    decode_body,
    json_response,
    parse_keep_alive,
    parse_options,
)


@inference_endpoint
async def embed(request: web.Request, engine: SimEngine) -> web.StreamResponse:
    """One L2-normalised vector per input, in input order."""
    started = time.perf_counter()
    body = decode_body(await request.read(), EmbedRequest)
    return await serve_embed(request, engine, body, started)


async def serve_embed(
    request: web.Request,
    engine: SimEngine,
    body: EmbedRequest,
    started: float,
    respond: Callable[[dict[str, Any]], web.Response] = json_response,
) -> web.Response:
    """Answer a decoded embed request (as Ollama's reply unless ``respond`` re-frames it)."""
    name = body.model or ""
    if not name:
        raise SimError(400, "model is required")
    disk = _embedding_model(engine, name)
    inputs = _inputs(body.input)
    options = parse_options(body.options)
    keep_alive = parse_keep_alive(body.keep_alive, engine.default_keep_alive)
    num_ctx = effective_num_ctx(engine.config, disk.model, options.num_ctx)
    counts = [count_tokens(text) for text in inputs]
    if body.truncate is False and any(count > num_ctx for count in counts):
        raise SimError(400, "the input length exceeds the context length")
    prompt_tokens = sum(min(count, num_ctx) for count in counts)
    async with engine.scheduler.lease(disk, num_ctx, keep_alive) as lease:
        if not inputs:
            return respond({"model": name, "embeddings": []})
        await _evaluate(request, engine, prompt_tokens)
        length = disk.model.embedding_length
        vectors = [embedding_vector(name, text, length, engine.config.seed) for text in inputs]
        if body.dimensions and 0 < body.dimensions < length:
            vectors = [normalise(vector[: body.dimensions]) for vector in vectors]
        engine.stats.completed += 1
        reply: dict[str, Any] = {"model": name, "embeddings": vectors}
        reply.update(_metrics(started, lease, prompt_tokens))
        return respond(reply)


@inference_endpoint
async def embeddings(request: web.Request, engine: SimEngine) -> web.StreamResponse:
    """Legacy single vector, not normalised."""
    body = decode_body(await request.read(), EmbeddingsRequest)
    name = body.model or ""
    if not name:
        raise SimError(400, "model is required")
    disk = _embedding_model(engine, name)
    options = parse_options(body.options)
    keep_alive = parse_keep_alive(body.keep_alive, engine.default_keep_alive)
    num_ctx = effective_num_ctx(engine.config, disk.model, options.num_ctx)
    prompt = body.prompt or ""
    async with engine.scheduler.lease(disk, num_ctx, keep_alive):
        if not prompt:
            return json_response({"embedding": []})
        await _evaluate(request, engine, min(num_ctx, count_tokens(prompt)))
        length = disk.model.embedding_length
        vector = legacy_embedding_vector(name, prompt, length, engine.config.seed)
        engine.stats.completed += 1
        return json_response({"embedding": vector})


def _embedding_model(engine: SimEngine, name: str) -> DiskModel:
    disk = engine.find_model(name, f'model "{name}" not found, try pulling it first')
    if not disk.model.has("embedding"):
        raise SimError(400, f'"{name}" does not support embeddings')
    return disk


def _inputs(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise SimError(400, "invalid input type")


async def _evaluate(request: web.Request, engine: SimEngine, prompt_tokens: int) -> None:
    """Spend the prompt-evaluation time, honouring an armed ``die``."""
    die = engine.faults.take_die()
    if engine.config.prompt_tps > 0:
        await asyncio.sleep(prompt_tokens / engine.config.prompt_tps)
    if die is not None:
        await break_before_response(request, engine, die)


def _metrics(started: float, lease: Lease, prompt_tokens: int) -> dict[str, int]:
    values = {
        "total_duration": max(1, int((time.perf_counter() - started) * 1e9)),
        "load_duration": int(lease.load_seconds * 1e9),
        "prompt_eval_count": prompt_tokens,
    }
    return {key: value for key, value in values.items() if value}
