"""OpenTelemetry spans from a finished :class:`~herd.RequestTrace`, with its own timestamps.

A server span per request (GenAI semantic-convention attributes), a ``herd.route`` child
with the routing decision, and one ``herd.attempt`` child per node call. OpenTelemetry
is imported inside the functions: only an active OTel sink needs it installed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import herd
import msgspec
from herd import RequestTrace
from herd.trace import AttemptRecord

from herd_plugins.sink_otel.trace_context import derived_trace_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind

__all__ = ["SpanBuilder", "trace_spans"]

OPERATIONS = {
    "chat": "chat",
    "generate": "text_completion",
    "embed": "embeddings",
    "embeddings": "embeddings",
}
#: Endings that leave the server span's status unset: a client that left, and a client's
#: own mistake (``rejected``, a 4xx), which the HTTP semantic conventions say is no server
#: error; its reason is kept in ``herd.error``.
NOT_ERRORS = ("completed", "client_disconnected", "rejected")
_encode_json = msgspec.json.encode


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _address(text: str) -> tuple[str, int | None]:
    """``host, port`` of a URL or of a ``host:port`` client string."""
    parts = urlsplit(text if "//" in text else f"//{text}")
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", port


class SpanBuilder:
    """Turns a finished trace into SDK spans (OpenTelemetry is imported only when active)."""

    def __init__(
        self, service_name: str, node_urls: dict[str, str], sample_ratio: float = 1.0
    ) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.resource = Resource.create(
            {"service.name": service_name, "service.version": herd.__version__}
        )
        self.scope = InstrumentationScope("herd", herd.__version__)
        self.propagator = TraceContextTextMapPropagator()
        self.node_urls = node_urls
        self.random = random.Random()
        self.bound = int(sample_ratio * (1 << 64))

    def spans(self, trace: RequestTrace) -> list[ReadableSpan]:
        """The trace's spans, or none when it is not sampled.

        Parent-based: a request whose caller sent a ``traceparent`` follows the caller's
        sampled flag; any other is kept when the low 64 bits of its trace id fall under
        ``sample_ratio`` (as OpenTelemetry's ``TraceIdRatioBased`` sampler decides).
        """
        parent = self._parent(trace.traceparent)
        if parent is not None:
            if not parent.trace_flags.sampled:
                return []
        elif int(derived_trace_id(trace.request_id)[16:], 16) >= self.bound:
            return []
        return trace_spans(
            trace,
            parent=parent,
            resource=self.resource,
            scope=self.scope,
            node_urls=self.node_urls,
            new_span_id=lambda: self.random.getrandbits(64) or 1,
        )

    def _parent(self, traceparent: str) -> SpanContext | None:
        if not traceparent:
            return None
        from opentelemetry import trace as otel_trace

        context = self.propagator.extract({"traceparent": traceparent})
        span_context = otel_trace.get_current_span(context).get_span_context()
        return span_context if span_context.is_valid else None


def _server_attributes(trace: RequestTrace, gen_ai: dict[str, Any], failed: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        **gen_ai,
        "herd.request_id": trace.request_id,
        "herd.api": trace.api,
        "herd.kind": trace.kind,
        "herd.status": trace.status,
        "herd.retries": trace.retries,
        "http.response.status_code": trace.http_status,
    }
    if trace.prompt_tokens or trace.completion_tokens:
        attrs["gen_ai.usage.input_tokens"] = trace.prompt_tokens
        attrs["gen_ai.usage.output_tokens"] = trace.completion_tokens
    optional = {
        "herd.node": trace.node,
        "herd.tags": tuple(trace.tags),
        "herd.excluded_nodes": tuple(trace.excluded_nodes),
        "herd.ttft_ms": trace.ttft_ms,
        "herd.queue_ms": trace.queue_ms,
        "herd.load_ms": trace.load_ms,
        "herd.tokens_per_second": trace.tokens_per_second,
        "herd.api_key": trace.api_key,
        "error.type": trace.status if failed else "",
        "herd.error": trace.error if trace.status == "rejected" else "",
    }
    attrs.update({k: v for k, v in optional.items() if v})
    if trace.client:
        host, port = _address(trace.client)
        attrs["client.address"] = host
        if port is not None:
            attrs["client.port"] = port
    return attrs


def _route_attributes(trace: RequestTrace) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "herd.route.candidates": tuple(sorted(trace.scores)),
        "herd.route.rejections": tuple(f"{n}: {r}" for n, r in sorted(trace.rejections.items())),
    }
    if trace.node:
        attrs["herd.route.chosen"] = trace.node
    if trace.scores:
        # One JSON attribute rather than one per node and signal: the OTLP encoder's
        # cost grows with the number of attributes, and this one is read by people.
        attrs["herd.route.scores"] = _encode_json(trace.scores).decode()
    return attrs


def _attempt_attributes(
    attempt: AttemptRecord, number: int, gen_ai: dict[str, Any], node_url: str
) -> dict[str, Any]:
    attrs: dict[str, Any] = {**gen_ai, "herd.node": attempt.node, "herd.attempt": number}
    host, port = _address(node_url)
    if host:
        attrs["server.address"] = host
    if port is not None:
        attrs["server.port"] = port
    if attempt.status:
        attrs["http.response.status_code"] = attempt.status
    if attempt.error:
        attrs["error.type"] = "node_failure"
        attrs["herd.attempt.error"] = attempt.error
    return attrs


def trace_spans(
    trace: RequestTrace,
    *,
    parent: SpanContext | None,
    resource: Any,
    scope: Any,
    node_urls: dict[str, str],
    new_span_id: Callable[[], int],
) -> list[ReadableSpan]:
    """The server span, its ``herd.route`` child and one ``herd.attempt`` child per node call.

    Args:
        parent: The caller's span (from its ``traceparent``), or None for a new trace whose
            id is derived from the request id.
        node_urls: Node name to base URL, for ``server.address`` on attempt spans.
        new_span_id: Returns a fresh non-zero 64-bit span id.
    """
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    if parent is not None:
        trace_id, flags = parent.trace_id, parent.trace_flags
    else:
        trace_id, flags = int(derived_trace_id(trace.request_id), 16), TraceFlags.SAMPLED
    sampled = TraceFlags(flags)
    server_ctx = SpanContext(trace_id, new_span_id(), is_remote=False, trace_flags=sampled)

    def span(
        name: str, kind: SpanKind, attrs: dict[str, Any], start: float, end: float, error: str
    ) -> ReadableSpan:
        is_server = kind == SpanKind.SERVER
        context = (
            server_ctx
            if is_server
            else SpanContext(trace_id, new_span_id(), is_remote=False, trace_flags=sampled)
        )
        return ReadableSpan(
            name=name,
            context=context,
            parent=parent if is_server else server_ctx,
            resource=resource,
            attributes=attrs,
            kind=kind,
            status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET),
            start_time=_ns(start),
            end_time=_ns(max(end, start)),
            instrumentation_scope=scope,
        )

    operation = OPERATIONS.get(trace.endpoint, trace.endpoint)
    gen_ai: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.system": "ollama",
        "gen_ai.request.model": trace.model,
    }
    attempt_gen_ai = dict(gen_ai)
    if trace.served_model:
        gen_ai["gen_ai.response.model"] = trace.served_model
    started = trace.received_at
    ended = max(trace.done_at, *(a.ended_at for a in trace.attempts), started)
    failed = trace.status not in NOT_ERRORS
    spans = [
        span(
            f"{operation} {trace.model}",
            SpanKind.SERVER,
            _server_attributes(trace, gen_ai, failed),
            started,
            ended,
            (trace.error or trace.status) if failed else "",
        ),
        span(
            "herd.route",
            SpanKind.INTERNAL,
            _route_attributes(trace),
            started,
            trace.attempts[0].started_at if trace.attempts else started,
            "",
        ),
    ]
    for number, attempt in enumerate(trace.attempts, start=1):
        # The call that served the request lasts until its stream ended.
        served = not attempt.error and attempt.node == trace.node
        end = max(attempt.ended_at, trace.done_at) if served else attempt.ended_at
        attrs = _attempt_attributes(
            attempt, number, attempt_gen_ai, node_urls.get(attempt.node, "")
        )
        spans.append(
            span("herd.attempt", SpanKind.CLIENT, attrs, attempt.started_at, end, attempt.error)
        )
    return spans
