"""The record a request leaves behind, put together from its Exchange in one place."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from herd._engine.node_lines import LineFields
from herd.trace import AttemptRecord, RequestTrace

if TYPE_CHECKING:
    from herd._engine.exchange import Exchange

__all__ = ["build_trace"]

_NO_FIELDS = LineFields()


def _counted_note(plain: int) -> str:
    return (
        f"completion_tokens counted from the {plain} answer lines the node sent: the stream"
        " stopped before its final line, which carries the node's own count"
    )


def build_trace(
    exchange: Exchange, status: str, error: str, http_status: int, tried: list[AttemptRecord]
) -> RequestTrace:
    """The trace of a served, failed or rejected request.

    Args:
        exchange: The request's exchange (its request, attempt, node lines, names).
        status: ``completed``, ``failed``, ``rejected`` or ``client_disconnected``.
        error: Why it failed or was rejected ("" when it did not).
        http_status: The status the client got, when no node answered (else the node's).
        tried: The attempts of a request that never reached a node that answered.
    """
    request, attempt = exchange.request, exchange.attempt
    assert request is not None
    now = time.time()
    common = {
        "request_id": request.request_id,
        "api": request.api,
        "endpoint": request.endpoint,
        "kind": request.kind,
        "model": request.model,
        "status": status,
        "error": error,
        "received_at": request.received_at,
        "done_at": now,
        "latency_ms": (now - request.received_at) * 1000.0,
        "tags": request.tags,
        "client": request.client,
        "stream": request.stream,
        "traceparent": request.traceparent,
        "api_key": request.api_key,
        "session": request.session,
        "notes": request.notes,
    }
    if attempt is None:  # never reached a node that answered
        return RequestTrace(
            **common,
            http_status=http_status,
            attempts=tried,
            retries=max(0, len(tried) - 1),
            excluded_nodes=[a.node for a in tried],
        )
    lines = exchange.lines
    final = lines.final or _NO_FIELDS
    completion_tokens = final.eval_count
    if lines.final is None and lines.plain:  # stopped before the node's own count came
        completion_tokens = lines.plain
        common["notes"] = [*request.notes, _counted_note(lines.plain)]
    first_byte_at = exchange.first_byte_at
    tps = final.eval_count / final.eval_duration * 1e9 if final.eval_duration else 0.0
    return RequestTrace(
        **common,
        served_model=exchange.served,
        node=attempt.node.name,
        http_status=http_status or attempt.reply.status,
        first_byte_at=first_byte_at,
        ttft_ms=(first_byte_at - request.received_at) * 1000.0,
        prompt_tokens=final.prompt_eval_count,
        completion_tokens=completion_tokens,
        tokens_per_second=tps,
        load_ms=final.load_duration / 1e6,
        retries=attempt.retries,
        excluded_nodes=attempt.tried[:-1],
        scores=attempt.decision.scores,
        rejections=attempt.decision.rejections,
        attempts=attempt.attempts,
        queue_ms=attempt.queue_ms,
    )
