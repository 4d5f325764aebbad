"""Embeddings in batches: a long ``input`` list is split and the parts spread over the fleet.

Embedding models are small and hot, so one big request is better served by several nodes
at once than by one. Requests with more inputs than ``workloads.embed_batch_size`` are cut
into batches, each scheduled like any request (so the queue-depth signal spreads them),
and the vectors are put back together in input order. Each batch leaves its own trace.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import msgspec

from herd._engine.gateway import Gateway
from herd._engine.relay import Relay
from herd._engine.routes.common import open_attempt
from herd._engine.scheduling.scheduler import Attempt
from herd.errors import HerdError
from herd.interfaces import InferenceRequest, WholeReply

__all__ = ["open_embed"]


async def open_embed(gateway: Gateway, request: InferenceRequest) -> Attempt:
    """Open an embeddings request, in batches when its input list is long.

    Returns:
        An attempt whose reply holds every vector (the first batch's node answers for the
        headers); callers use it exactly as one from :func:`open_attempt`.
    """
    size = gateway.settings.workloads.embed_batch_size
    body = request.body
    if not body and request.raw_body and len(request.raw_body) > size * 2:
        body = msgspec.json.decode(request.raw_body)
    inputs = body.get("input") if request.endpoint == "embed" and body else None
    if not isinstance(inputs, list) or len(inputs) <= size:
        return await open_attempt(gateway, request, "embed")
    parts = [
        dataclasses.replace(
            request,
            body={**body, "input": inputs[start : start + size]},
            raw_body=None,
            request_id=f"{request.request_id}-{index}",
            notes=[f"batch {index + 1} of {-(-len(inputs) // size)}"],
        )
        for index, start in enumerate(range(0, len(inputs), size))
    ]
    outcomes = await asyncio.gather(
        *(open_attempt(gateway, part, "embed") for part in parts), return_exceptions=True
    )
    attempts = [o for o in outcomes if isinstance(o, Attempt)]
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    refused = next((a for a in attempts if a.reply.status >= 400), None)
    if failure is not None or refused is not None:
        for part, outcome in zip(parts, outcomes, strict=True):
            if isinstance(outcome, Attempt) and outcome is not refused:
                Relay(gateway, part, outcome).done("failed", "another batch failed", None)
        if refused is not None:
            return refused
        assert failure is not None
        raise failure
    merged = _merge([a.reply.first for a in attempts])
    for part, attempt in zip(parts[1:], attempts[1:], strict=True):
        Relay(gateway, part, attempt).done("completed", "", None)
    first = attempts[0]
    first.reply = WholeReply(200, merged)
    return first


def _merge(bodies: list[bytes]) -> bytes:
    vectors: list[Any] = []
    tokens = 0
    duration = 0
    model = ""
    for raw in bodies:
        try:
            data = msgspec.json.decode(raw)
            vectors.extend(data["embeddings"])
        except (msgspec.DecodeError, KeyError, TypeError):
            raise HerdError(502, "a node sent an embeddings reply without embeddings") from None
        model = model or str(data.get("model") or "")
        tokens += int(data.get("prompt_eval_count") or 0)
        duration = max(duration, int(data.get("total_duration") or 0))
    out: dict[str, Any] = {"model": model, "embeddings": vectors}
    if duration:
        out["total_duration"] = duration
    if tokens:
        out["prompt_eval_count"] = tokens
    return msgspec.json.encode(out)
