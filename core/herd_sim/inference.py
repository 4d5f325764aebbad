"""``POST /api/chat`` and ``POST /api/generate``."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from herd_sim.catalog import DiskModel
from herd_sim.engine import SimEngine
from herd_sim.generation import (
    NDJSON_FRAMING,
    Framing,
    GenerationPlan,
    created_at,
    inference_endpoint,
    logprob_entries,
    plan_generation,
    run_generation,
)
from herd_sim.scheduler import effective_num_ctx
from herd_sim.text import count_tokens, token_ids, tool_call_arguments, tool_call_id
from herd_sim.wire import (
    ChatRequest,
    GenerateRequest,
    Message,
    SimError,
    Tool,
    check_format,
    check_image,
    check_top_logprobs,
    decode_body,
    json_response,
    parse_keep_alive,
    parse_options,
    parse_think,
)

IMAGE_TOKENS = 256


class ChatChunks:
    """Chunk shapes of ``/api/chat``: ``message{role, content[, thinking][, tool_calls]}``."""

    def __init__(self, model: str, top_logprobs: int | None) -> None:
        self._model = model
        self._top_logprobs = top_logprobs

    def _head(self) -> dict[str, Any]:
        return {"model": self._model, "created_at": created_at()}

    def piece(self, kind: str, value: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        if kind == "content":
            message["content"] = value
        elif kind == "thinking":
            message["thinking"] = value
        else:
            message["tool_calls"] = value
        chunk = {**self._head(), "message": message, "done": False}
        if kind == "content" and self._top_logprobs is not None:
            chunk["logprobs"] = logprob_entries(value, self._top_logprobs)
        return chunk

    def final(self, plan: GenerationPlan, metrics: dict[str, int]) -> dict[str, Any]:
        message = {"role": "assistant", "content": ""}
        head = {**self._head(), "message": message, "done": True}
        return {**head, "done_reason": plan.done_reason, **metrics}

    def aggregate(self, plan: GenerationPlan, metrics: dict[str, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.content)}
        if plan.thinking:
            message["thinking"] = "".join(plan.thinking)
        if plan.tool_calls:
            message["tool_calls"] = plan.tool_calls
        body: dict[str, Any] = {**self._head(), "message": message, "done": True}
        body["done_reason"] = plan.done_reason
        if self._top_logprobs is not None:
            body["logprobs"] = [
                entry
                for token in plan.content
                for entry in logprob_entries(token, self._top_logprobs)
            ]
        return {**body, **metrics}


class GenerateChunks:
    """Chunk shapes of ``/api/generate``: ``response`` (+ ``thinking``), final ``context``."""

    def __init__(
        self, model: str, context: list[int] | None, top_logprobs: int | None = None
    ) -> None:
        self._model = model
        self._context = context
        self._top_logprobs = top_logprobs

    def _head(self) -> dict[str, Any]:
        return {"model": self._model, "created_at": created_at()}

    def piece(self, kind: str, value: Any) -> dict[str, Any]:
        chunk = {**self._head(), "response": value if kind == "content" else ""}
        if kind == "thinking":
            chunk["thinking"] = value
        elif self._top_logprobs is not None:
            chunk["logprobs"] = logprob_entries(value, self._top_logprobs)
        return {**chunk, "done": False}

    def final(self, plan: GenerationPlan, metrics: dict[str, int]) -> dict[str, Any]:
        return self._closing(plan, metrics, "", "")

    def aggregate(self, plan: GenerationPlan, metrics: dict[str, int]) -> dict[str, Any]:
        body = self._closing(plan, metrics, "".join(plan.content), "".join(plan.thinking))
        if self._top_logprobs is not None:
            body["logprobs"] = [
                entry
                for token in plan.content
                for entry in logprob_entries(token, self._top_logprobs)
            ]
        return body

    def _closing(
        self, plan: GenerationPlan, metrics: dict[str, int], response: str, thinking: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {**self._head(), "response": response}
        if thinking:
            body["thinking"] = thinking
        body.update(done=True, done_reason=plan.done_reason)
        if self._context is not None:
            body["context"] = self._context
        return {**body, **metrics}


@inference_endpoint
async def chat(request: web.Request, engine: SimEngine) -> web.StreamResponse:
    """Chat completion, streamed by default."""
    started = time.perf_counter()
    body = decode_body(await request.read(), ChatRequest)
    return await serve_chat(request, engine, body, started)


async def serve_chat(
    request: web.Request,
    engine: SimEngine,
    body: ChatRequest,
    started: float,
    framing: Framing = NDJSON_FRAMING,
) -> web.StreamResponse:
    """Answer a decoded chat request (framed as Ollama NDJSON unless told otherwise)."""
    name = body.model or ""
    if not name:
        raise SimError(400, "model is required")
    disk = engine.find_model(name, f"model '{name}' not found")
    model = disk.model
    if not model.has("completion"):
        raise SimError(400, f'"{name}" does not support chat')
    tools = body.tools or []
    if tools and not model.has("tools"):
        raise SimError(400, f"{disk.name.full} does not support tools")
    think = _checked_think(body.think, name, disk)
    check_format(body.format)
    check_top_logprobs(body.top_logprobs)
    messages = body.messages or []
    images = [image for message in messages for image in message.images or []]
    _check_images(images, disk)
    options = parse_options(body.options)
    keep_alive = parse_keep_alive(body.keep_alive, engine.default_keep_alive)
    num_ctx = effective_num_ctx(engine.config, model, options.num_ctx)
    if not messages:
        return await _load_or_unload(engine, disk, num_ctx, keep_alive, name, "message")
    prompt_text = _last_user_text(messages)
    rendered = _render_chat(messages, tools)
    prompt_tokens = min(num_ctx, count_tokens(rendered) + IMAGE_TOKENS * len(images))
    tool_call = None
    if tools and (messages[-1].role or "").lower() == "user":
        tool_call = _tool_call_for(tools, prompt_text, name, engine.config.seed)
    plan = plan_generation(
        engine.config,
        name,
        prompt_text,
        prompt_tokens,
        num_ctx,
        options,
        think=think if think is not None else model.has("thinking"),
        tool_call=tool_call,
        response_format=body.format,
    )
    top_logprobs = (body.top_logprobs or 0) if body.logprobs else None
    renderer = ChatChunks(name, top_logprobs)
    async with engine.scheduler.lease(disk, num_ctx, keep_alive) as lease:
        stream = body.stream is not False
        return await run_generation(
            request, engine, lease, plan, renderer, stream, started, framing
        )


@inference_endpoint
async def generate(request: web.Request, engine: SimEngine) -> web.StreamResponse:
    """Text completion, streamed by default."""
    started = time.perf_counter()
    body = decode_body(await request.read(), GenerateRequest)
    return await serve_generate(request, engine, body, started)


async def serve_generate(
    request: web.Request,
    engine: SimEngine,
    body: GenerateRequest,
    started: float,
    framing: Framing = NDJSON_FRAMING,
) -> web.StreamResponse:
    """Answer a decoded generate request (framed as Ollama NDJSON unless told otherwise)."""
    name = body.model or ""
    disk = engine.find_model(name, f"model '{name}' not found")
    model = disk.model
    if not model.has("completion"):
        raise SimError(400, f'"{name}" does not support generate')
    if body.raw and (body.template or body.system or body.context):
        raise SimError(400, "raw mode does not support template, system, or context")
    if body.suffix and not model.has("insert"):
        raise SimError(400, f"{disk.name.full} does not support insert")
    think = _checked_think(body.think, name, disk)
    check_format(body.format)
    check_top_logprobs(body.top_logprobs)
    images = body.images or []
    _check_images(images, disk)
    options = parse_options(body.options)
    keep_alive = parse_keep_alive(body.keep_alive, engine.default_keep_alive)
    num_ctx = effective_num_ctx(engine.config, model, options.num_ctx)
    prompt = body.prompt or ""
    if not prompt and not images:
        return await _load_or_unload(engine, disk, num_ctx, keep_alive, name, "response")
    rendered = (body.system + "\n" if body.system else "") + prompt + (body.suffix or "")
    history = body.context or []
    prompt_tokens = min(num_ctx, len(history) + count_tokens(rendered) + IMAGE_TOKENS * len(images))
    plan = plan_generation(
        engine.config,
        name,
        prompt,
        prompt_tokens,
        num_ctx,
        options,
        think=think if think is not None else model.has("thinking"),
        response_format=body.format,
    )
    context = None
    if not body.raw:
        new_prompt_ids = token_ids(rendered, prompt_tokens - len(history))
        output_ids = token_ids("".join(plan.content), plan.eval_count)
        context = history + new_prompt_ids + output_ids
    top_logprobs = (body.top_logprobs or 0) if body.logprobs else None
    renderer = GenerateChunks(name, context, top_logprobs)
    async with engine.scheduler.lease(disk, num_ctx, keep_alive) as lease:
        stream = body.stream is not False
        return await run_generation(
            request, engine, lease, plan, renderer, stream, started, framing
        )


async def _load_or_unload(
    engine: SimEngine,
    disk: DiskModel,
    num_ctx: int,
    keep_alive: float | None,
    name: str,
    text_field: str,
) -> web.Response:
    """Empty messages/prompt: load the model, or with ``keep_alive: 0`` unload it."""
    if keep_alive == 0:
        engine.scheduler.request_unload(disk)
        reason = "unload"
    else:
        async with engine.scheduler.lease(disk, num_ctx, keep_alive):
            reason = "load"
    text: Any = {"role": "assistant", "content": ""} if text_field == "message" else ""
    return json_response(
        {
            "model": name,
            "created_at": created_at(),
            text_field: text,
            "done": True,
            "done_reason": reason,
        }
    )


def _checked_think(value: bool | str | None, name: str, disk: DiskModel) -> bool | None:
    think = parse_think(value)
    if think and not disk.model.has("thinking"):
        raise SimError(400, f'"{name}" does not support thinking')
    return think


def _check_images(images: list[str], disk: DiskModel) -> None:
    for image in images:
        check_image(image)
    if images and not disk.model.has("vision"):
        raise SimError(400, f"{disk.name.full} does not support vision")


def _last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if (message.role or "").lower() == "user":
            return message.content or ""
    return messages[-1].content or ""


def _render_chat(messages: list[Message], tools: list[Tool]) -> str:
    """A template-like rendering, so prompt token counts grow with the conversation."""
    parts = [f"<|{(m.role or 'user').lower()}|>\n{m.content or ''}\n" for m in messages]
    for tool in tools:
        if tool.function is not None:
            parts.append(f"<|tool|>{tool.function.name} {tool.function.description or ''}\n")
    return "".join(parts) + "<|assistant|>\n"


def _tool_call_for(
    tools: list[Tool], prompt_text: str, model: str, seed: int
) -> dict[str, Any] | None:
    """A call of the first tool whose name the user's message mentions, if any."""
    lowered = prompt_text.lower()
    for tool in tools:
        function = tool.function
        if function is None or not function.name or function.name.lower() not in lowered:
            continue
        return {
            "id": tool_call_id(model, prompt_text, function.name, seed),
            "function": {
                "index": 0,
                "name": function.name,
                "arguments": tool_call_arguments(function.parameters),
            },
        }
    return None
