"""What a chat/generate request produces, and how it is paced and written to the client."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

import msgspec
from aiohttp import web

from herd_sim.control import DieSpec
from herd_sim.engine import ENGINE, SimEngine
from herd_sim.models import SimConfig
from herd_sim.scheduler import Lease
from herd_sim.text import count_tokens, expected_reply, expected_thinking, json_reply
from herd_sim.wire import (
    NDJSON,
    GenerationOptions,
    SimError,
    encode_line,
    json_response,
    rfc3339,
)

DIED = web.RequestKey("herd_sim_died", bool)
"""Request key set when an injected failure (not the client) ended the connection."""

InferenceHandler = Callable[[web.Request, SimEngine], Awaitable[web.StreamResponse]]


def inference_endpoint(
    handler: InferenceHandler,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap an inference handler: armed hang/fail first, and count client disconnects."""

    @functools.wraps(handler)
    async def endpoint(request: web.Request) -> web.StreamResponse:
        engine = request.app[ENGINE]
        try:
            hang = engine.faults.take_hang()
            if hang is not None:
                engine.stats.hung += 1
                await asyncio.sleep(hang.seconds)
            fail = engine.faults.take_fail()
            if fail is not None:
                engine.stats.failed += 1
                raise SimError(fail.status, fail.error)
            return await handler(request, engine)
        except asyncio.CancelledError:
            if not request.get(DIED):
                engine.stats.cancelled += 1
            raise
        except ConnectionError:
            # The client went away while we wrote; the disconnect cancellation is on its way.
            if not request.get(DIED):
                engine.stats.cancelled += 1
            raise asyncio.CancelledError from None

    return endpoint


@dataclass
class GenerationPlan:
    """Every token of one answer, decided before the first one is sent."""

    prompt_tokens: int
    thinking: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_tokens: int = 0
    done_reason: str = "stop"

    @property
    def eval_count(self) -> int:
        return len(self.thinking) + len(self.content) + self.tool_tokens

    def pieces(self) -> list[tuple[str, Any]]:
        """One entry per chunk: ``("thinking"|"content", token)`` or ``("tools", calls)``."""
        pieces: list[tuple[str, Any]] = [("thinking", token) for token in self.thinking]
        pieces += [("content", token) for token in self.content]
        if self.tool_calls:
            pieces.append(("tools", self.tool_calls))
        return pieces


def plan_generation(
    config: SimConfig,
    model: str,
    prompt_text: str,
    prompt_tokens: int,
    num_ctx: int,
    options: GenerationOptions,
    think: bool,
    tool_call: dict[str, Any] | None = None,
    response_format: Any = None,
) -> GenerationPlan:
    """Decide the answer: thinking tokens, then a tool call or ``reply_tokens`` of content.

    ``options.num_predict`` caps the total (thinking included) with ``done_reason: "length"``;
    ``-2`` fills the context; ``-1``/``0``/unset leave the natural length. A ``format``
    (``"json"`` or a schema) turns the content into a JSON document (see ``json_reply``).
    """
    plan = GenerationPlan(prompt_tokens=prompt_tokens)
    seed = options.seed
    thinking_count = config.thinking_tokens if think else 0
    content_count = 0 if tool_call else config.reply_tokens
    document: list[str] | None = None
    if response_format and not tool_call:
        words = expected_reply(model, prompt_text, config.reply_tokens, config.seed, seed)
        document = json_reply(words, response_format)
        content_count = len(document)
    tool_tokens = count_tokens(msgspec.json.encode(tool_call).decode()) if tool_call else 0
    limit = options.num_predict
    if limit == -2:
        limit = max(0, num_ctx - prompt_tokens)
        content_count = max(0, limit - thinking_count)
        tool_call, tool_tokens = None, 0
        plan.done_reason = "length"
    elif limit is not None and limit <= 0:
        limit = None
    if limit is not None and thinking_count + tool_tokens + content_count > limit:
        plan.done_reason = "length"
        thinking_count = min(thinking_count, limit)
        if tool_call and thinking_count + tool_tokens > limit:
            tool_call, tool_tokens = None, 0
        content_count = min(content_count, limit - thinking_count - tool_tokens)
    plan.thinking = expected_thinking(model, prompt_text, thinking_count, config.seed, seed)
    if document is not None:
        plan.content = document[:content_count]
    else:
        plan.content = expected_reply(model, prompt_text, content_count, config.seed, seed)
    if tool_call:
        plan.tool_calls, plan.tool_tokens = [tool_call], tool_tokens
    return plan


@dataclass
class Framing:
    """How chunks go on the wire: Ollama's NDJSON by default; the OpenAI mode re-frames them.

    ``line`` turns one Ollama chunk into the bytes to write (an SSE event, or nothing), and
    ``whole`` one aggregated Ollama reply into the response of a non-streamed request.
    """

    content_type: str = NDJSON
    line: Callable[[dict[str, Any]], bytes] = encode_line
    whole: Callable[[dict[str, Any]], web.Response] = json_response


NDJSON_FRAMING = Framing()


class ChunkRenderer(Protocol):
    """Shapes chunks for one API (chat or generate)."""

    def piece(self, kind: str, value: Any) -> dict[str, Any]: ...

    def final(self, plan: GenerationPlan, metrics: dict[str, int]) -> dict[str, Any]: ...

    def aggregate(self, plan: GenerationPlan, metrics: dict[str, int]) -> dict[str, Any]: ...


def created_at() -> str:
    """``created_at`` of a chunk: UTC, RFC 3339."""
    return rfc3339(datetime.now(UTC))


def logprob_entries(token: str, top_logprobs: int) -> list[dict[str, Any]]:
    """A plausible ``logprobs`` entry for ``token``."""
    entry: dict[str, Any] = {"token": token, "logprob": -0.25, "bytes": list(token.encode())}
    if top_logprobs > 0:
        entry["top_logprobs"] = [dict(entry)]
    return [entry]


async def run_generation(
    request: web.Request,
    engine: SimEngine,
    lease: Lease,
    plan: GenerationPlan,
    renderer: ChunkRenderer,
    stream: bool,
    started: float,
    framing: Framing = NDJSON_FRAMING,
) -> web.StreamResponse:
    """Pace ``plan`` at the configured speeds and write it as NDJSON or one JSON object."""
    config = engine.config
    die = engine.faults.take_die()
    prompt_started = time.perf_counter()
    if config.prompt_tps > 0:
        await asyncio.sleep(plan.prompt_tokens / config.prompt_tps)
    else:
        await asyncio.sleep(0)
    prompt_ns = _elapsed_ns(prompt_started)
    eval_started = time.perf_counter()
    pieces = plan.pieces()
    response: web.StreamResponse | None = None
    for index, (kind, value) in enumerate(pieces):
        await _pace(eval_started, index + 1, config.gen_tps)
        if not stream:
            continue
        if die is not None and index == die.after_chunks:
            return await break_stream(request, engine, response, die, framing)
        response = response or await open_stream(request, framing.content_type)
        await _write(response, framing.line(renderer.piece(kind, value)))
    metrics = {
        "total_duration": _elapsed_ns(started),
        "load_duration": int(lease.load_seconds * 1e9),
        "prompt_eval_count": plan.prompt_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": plan.eval_count,
        "eval_duration": _elapsed_ns(eval_started),
    }
    metrics = {name: value for name, value in metrics.items() if value}
    if die is not None:
        if not stream:
            return await break_before_response(request, engine, die)
        return await break_stream(request, engine, response, die, framing)
    if not stream:
        engine.stats.completed += 1
        return framing.whole(renderer.aggregate(plan, metrics))
    response = response or await open_stream(request, framing.content_type)
    await _write(response, framing.line(renderer.final(plan, metrics)))
    await response.write_eof()
    engine.stats.completed += 1
    return response


async def _write(response: web.StreamResponse, data: bytes) -> None:
    if data:
        await response.write(data)


async def open_stream(request: web.Request, content_type: str = NDJSON) -> web.StreamResponse:
    """Send the 200 NDJSON headers (Ollama sends them with the first chunk)."""
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    await response.prepare(request)
    return response


async def break_stream(
    request: web.Request,
    engine: SimEngine,
    response: web.StreamResponse | None,
    die: DieSpec,
    framing: Framing = NDJSON_FRAMING,
) -> web.StreamResponse:
    """End a stream the injected way: an in-band error line, or an aborted connection."""
    engine.stats.died += 1
    if die.error is None:
        await abort_connection(request)
    response = response or await open_stream(request, framing.content_type)
    await _write(response, framing.line({"error": die.error}))
    await response.write_eof()
    return response


async def break_before_response(request: web.Request, engine: SimEngine, die: DieSpec) -> NoReturn:
    """A non-streamed answer that breaks: 500 with the error, or no response at all."""
    engine.stats.died += 1
    if die.error is not None:
        raise SimError(500, die.error)
    await abort_connection(request)


async def abort_connection(request: web.Request) -> NoReturn:
    """Reset the TCP connection once what was written has left, then end the handler."""
    request[DIED] = True
    transport = request.transport
    if transport is not None:
        for _ in range(200):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.005)
        transport.abort()
    raise asyncio.CancelledError


async def _pace(started: float, tokens_done: int, tokens_per_second: float) -> None:
    if tokens_per_second <= 0:
        await asyncio.sleep(0)
        return
    delay = started + tokens_done / tokens_per_second - time.perf_counter()
    await asyncio.sleep(max(0.0, delay))


def _elapsed_ns(since: float) -> int:
    return max(1, int((time.perf_counter() - since) * 1e9))
