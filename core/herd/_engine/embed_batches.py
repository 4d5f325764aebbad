"""Embeddings in batches: a long ``input`` list is split and the parts spread over the fleet.

Embedding models are small and hot, so one big request is better served by several nodes
at once than by one. Requests with more inputs than ``workloads.embed_batch_size`` are cut
into batches, each scheduled like any request (so the queue-depth signal spreads them),
and the vectors are put back together in input order. Each batch leaves its own trace.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

import msgspec

from herd._engine.client_watch import ROUTER_STOPPED
from herd.errors import HerdError
from herd.interfaces import TypedReply, UpstreamReply
from herd.protocol.ollama_replies import OllamaEmbedReply, as_embed_reply

if TYPE_CHECKING:
    from herd._engine.exchange import Exchange
    from herd._engine.scheduling.scheduler import Attempt
    from herd.settings import WorkloadSettings

__all__ = ["open_in_batches"]


async def open_in_batches(exchange: Exchange, settings: WorkloadSettings) -> Attempt | None:
    """Open a long embeddings request as batches; None when it is short enough for one.

    Returns:
        An attempt whose reply holds every vector (the first batch's node answers for the
        headers); the exchange uses it as the attempt of the whole request.
    """
    request = exchange.request
    assert request is not None
    size = settings.embed_batch_size
    body = request.body
    if not body and request.raw_body and len(request.raw_body) > size * 2:
        body = msgspec.json.decode(request.raw_body)
    inputs = body.get("input") if request.endpoint == "embed" and body else None
    if not isinstance(inputs, list) or len(inputs) <= size:
        return None
    count = -(-len(inputs) // size)
    parts = [
        exchange.part(
            dataclasses.replace(
                request,
                body={**body, "input": inputs[start : start + size]},
                raw_body=None,
                request_id=f"{request.request_id}-{index}",
                notes=[f"batch {index + 1} of {count}"],
            )
        )
        for index, start in enumerate(range(0, len(inputs), size))
    ]
    opening = [asyncio.ensure_future(_opened(part)) for part in parts]
    try:
        outcomes = await asyncio.gather(*opening, return_exceptions=True)
    except asyncio.CancelledError:  # the client left, or the router stops: free what opened
        watch = exchange.watch
        stopping = watch is not None and watch.stopping
        why = ("failed", ROUTER_STOPPED) if stopping else ("client_disconnected", "the client left")
        for part, task in zip(parts, opening, strict=True):
            if task.done() and not task.cancelled() and task.exception() is None:
                part.attempt = task.result()
                part.done(*why)
        raise
    for part, outcome in zip(parts, outcomes, strict=True):
        if not isinstance(outcome, BaseException):
            part.attempt = outcome
            part.served = part.served_name(outcome)
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    refused = next((p for p in parts if p.attempt and p.attempt.reply.status >= 400), None)
    if failure is not None or refused is not None:
        for part in parts:
            if part.attempt is not None and part is not refused:
                part.done("failed", "another batch failed")
        if refused is not None:
            return refused.attempt
        assert failure is not None
        raise failure
    try:
        merged = _merge([part.attempt.reply for part in parts if part.attempt])
        if len(merged.embeddings) != len(inputs):
            raise HerdError(
                502, f"the nodes sent {len(merged.embeddings)} embeddings for {len(inputs)} inputs"
            )
    except HerdError as error:
        for part in parts:
            part.done("failed", error.message)
        raise
    for part in parts[1:]:
        part.done("completed")
    first = parts[0].attempt
    assert first is not None
    first.reply = TypedReply(merged)
    exchange.lines = parts[0].lines  # the whole request's trace is the first batch's
    return first


async def _opened(part: Exchange) -> Attempt:
    """One batch, opened: its answer is whole once it opens (embeddings never stream), so
    its node's slot is free at once. Held until every batch had opened, the slots would be
    a deadlock: more batches than the fleet's slots for the model would wait for slots
    that only the answered batches hold (five batches for a node's four slots hung)."""
    attempt = await part.schedule()
    attempt.release()  # (the batch's trace still ends with the request; a release is once)
    return attempt


def _merge(replies: list[UpstreamReply]) -> OllamaEmbedReply:
    """The batches' vectors in input order, as one answer (encoded only for Ollama clients)."""
    vectors: list[list[float]] = []
    tokens = 0
    duration = 0
    model = ""
    for reply in replies:
        try:
            answer = as_embed_reply(reply.first if reply.decoded is None else reply.decoded)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise HerdError(502, "a node sent an embeddings reply without embeddings") from None
        vectors.extend(answer.embeddings)
        model = model or answer.model
        tokens += answer.prompt_eval_count
        duration = max(duration, answer.total_duration)
    return OllamaEmbedReply(
        model=model, embeddings=vectors, total_duration=duration, prompt_eval_count=tokens
    )
