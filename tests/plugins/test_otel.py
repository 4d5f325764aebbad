"""OpenTelemetry export: spans built from finished traces, GenAI attributes, W3C parents."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from herd.trace import AttemptRecord
from herd_plugins.sink_otel import OtelSink
from herd_plugins.sink_otel.trace_context import derived_trace_id
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from trace_factory import make_trace

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


def export(
    *traces: Any, node_urls: dict[str, str] | None = None, sample_ratio: float = 1.0
) -> list[Any]:
    """Run traces through an OtelSink into an in-memory exporter; the spans, in order."""
    exporter = InMemorySpanExporter()
    sink = OtelSink(OtelSink.Config(sample_ratio=sample_ratio), exporter=exporter)
    sink.set_node_urls(node_urls or {})
    asyncio.run(sink.start())
    for trace in traces:
        sink.submit(trace)
    asyncio.run(sink.flush())
    spans = list(exporter.get_finished_spans())
    asyncio.run(sink.stop())
    assert sink.exported + sink.unsampled == len(traces) and sink.dropped == 0
    return spans


def test_spans_carry_genai_attributes_and_the_incoming_parent() -> None:
    trace = make_trace(
        traceparent=TRACEPARENT,
        retries=1,
        excluded_nodes=["n2"],
        tags=["app:chat"],
        client="127.0.0.1:50000",
        rejections={"n3": "model not on this node"},
        scores={"n1": {"thermal": 1.0}, "n2": {"thermal": 0.25}},
    )
    failed = AttemptRecord(
        "n2", trace.received_at, trace.received_at + 0.01, "n2 answered 500", 500
    )
    trace = type(trace)(**{**_fields(trace), "attempts": [failed, *trace.attempts]})
    server, route, first, second = export(trace, node_urls={"n1": "http://10.0.0.7:11434"})

    assert server.name == "chat llama3.2:3b" and server.kind == SpanKind.SERVER
    assert server.context.trace_id == int(TRACE_ID, 16)
    assert server.parent.span_id == int(PARENT_SPAN, 16) and server.parent.is_remote
    attrs = server.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.system"] == "ollama"
    assert attrs["gen_ai.request.model"] == "llama3.2:3b"
    assert attrs["gen_ai.response.model"] == "llama3.2:3b"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (10, 20)
    assert attrs["herd.node"] == "n1" and attrs["herd.retries"] == 1
    assert attrs["herd.tags"] == ("app:chat",) and attrs["client.address"] == "127.0.0.1"
    assert server.start_time == int(trace.received_at * 1e9)
    assert server.end_time == int(trace.done_at * 1e9)
    assert server.status.status_code == StatusCode.UNSET

    assert route.name == "herd.route" and route.parent.span_id == server.context.span_id
    assert route.attributes["herd.route.candidates"] == ("n1", "n2")
    assert route.attributes["herd.route.rejections"] == ("n3: model not on this node",)
    assert json.loads(route.attributes["herd.route.scores"])["n2"] == {"thermal": 0.25}
    assert route.attributes["herd.route.chosen"] == "n1"

    assert first.name == second.name == "herd.attempt"
    assert {first.parent.span_id, second.parent.span_id} == {server.context.span_id}
    assert first.kind == SpanKind.CLIENT and first.status.status_code == StatusCode.ERROR
    assert first.attributes["herd.attempt.error"] == "n2 answered 500"
    assert first.attributes["http.response.status_code"] == 500
    assert second.attributes["server.address"] == "10.0.0.7"
    assert second.attributes["server.port"] == 11434
    assert second.attributes["gen_ai.request.model"] == "llama3.2:3b"
    assert second.end_time == int(trace.done_at * 1e9)  # the served call lasts to the end
    assert len({s.context.trace_id for s in (server, route, first, second)}) == 1


def _fields(trace: Any) -> dict[str, Any]:
    return {name: getattr(trace, name) for name in trace.__struct_fields__}


def test_a_request_without_traceparent_is_a_root_with_the_derived_trace_id() -> None:
    trace = make_trace()
    server, *_ = export(trace)
    assert server.parent is None
    assert server.context.trace_id == int(derived_trace_id(trace.request_id), 16)


def test_a_rejected_request_is_no_server_error_and_keeps_its_reason() -> None:
    # HTTP semantic conventions: a SERVER span's status stays unset for a 4xx (the client's
    # mistake), so a tracing backend's error rate is the server's own
    trace = make_trace(
        node="", model="nope", status="rejected", error="model 'nope' not found", http_status=404
    )
    server, route = export(trace)
    assert server.status.status_code == StatusCode.UNSET
    assert "error.type" not in server.attributes
    assert server.attributes["herd.status"] == "rejected"
    assert server.attributes["herd.error"] == "model 'nope' not found"
    assert server.attributes["http.response.status_code"] == 404
    assert "gen_ai.response.model" not in server.attributes
    assert route.attributes["herd.route.candidates"] == ()
    # a node's failure is the server's error
    failed = make_trace(status="failed", error="node n1 failed mid-stream", http_status=200)
    server, *_ = export(failed)
    assert server.status.status_code == StatusCode.ERROR
    assert server.status.description == "node n1 failed mid-stream"
    assert server.attributes["error.type"] == "failed" and "herd.error" not in server.attributes


def test_sampling_follows_the_caller_and_the_ratio() -> None:
    unsampled_parent = make_trace(traceparent=f"00-{TRACE_ID}-{PARENT_SPAN}-00")
    sampled_parent = make_trace(traceparent=TRACEPARENT)
    root = make_trace()
    spans = export(unsampled_parent, sampled_parent, root, sample_ratio=0.0)
    assert {s.context.trace_id for s in spans} == {int(TRACE_ID, 16)}
    assert len(spans) == 3 and all(s.context.trace_flags.sampled for s in spans)


def test_without_an_endpoint_the_sink_is_inactive() -> None:
    sink = OtelSink()
    assert not sink.active
    asyncio.run(sink.start())
    sink.submit(make_trace())
    assert sink.flush_now() is False and sink.exported == 0
    asyncio.run(sink.stop())


class Receiver:
    """A tiny OTLP/HTTP collector on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                received.paths.append(self.path)
                received.requests.append(message)
                self.send_response(received.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[Any]:
        return [
            span
            for request in self.requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = Receiver()
    yield server
    server.close()


def _attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_spans_arrive_at_a_real_otlp_http_receiver(receiver: Receiver) -> None:
    sink = OtelSink(OtelSink.Config(otlp_endpoint=receiver.url, service_name="herd-test"))
    asyncio.run(sink.start())
    sink.submit(make_trace(traceparent=TRACEPARENT))
    asyncio.run(sink.stop())

    assert receiver.paths == ["/v1/traces"]
    resource = receiver.requests[0].resource_spans[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == (
        "herd-test"
    )
    spans = {span.name: span for span in receiver.spans()}
    assert set(spans) == {"chat llama3.2:3b", "herd.route", "herd.attempt"}
    server = spans["chat llama3.2:3b"]
    assert server.trace_id.hex() == TRACE_ID and server.parent_span_id.hex() == PARENT_SPAN
    assert _attributes(server)["gen_ai.request.model"] == "llama3.2:3b"
    assert sink.exported == 1


def test_a_refused_export_is_counted_as_dropped(receiver: Receiver) -> None:
    receiver.status = 400  # not retried by the exporter
    sink = OtelSink(OtelSink.Config(otlp_endpoint=receiver.url))
    asyncio.run(sink.start())
    sink.submit(make_trace())
    assert sink.flush_now(timeout=60)
    assert (sink.exported, sink.failed, sink.dropped) == (0, 1, 1)
    asyncio.run(sink.stop())


def test_a_request_through_the_router_is_exported(
    make_sim: Any, make_router: Any, receiver: Receiver
) -> None:
    node = make_sim(name="a")
    options = {"otel": {"otlp_endpoint": receiver.url}}
    router = make_router(nodes=[node], plugins={"options": options})
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"traceparent": TRACEPARENT}
    reply = httpx.post(f"{router.url}/api/chat", json=body, headers=headers, timeout=30)
    assert reply.status_code == 200
    sink = next(s for s in router.gateway.sinks if isinstance(s, OtelSink))
    router.call(sink.flush())

    spans = {span.name: span for span in receiver.spans()}
    server, attempt = spans["chat llama3.2:3b"], spans["herd.attempt"]
    assert server.parent_span_id.hex() == PARENT_SPAN and server.trace_id.hex() == TRACE_ID
    server_attrs, attempt_attrs = _attributes(server), _attributes(attempt)
    assert server_attrs["gen_ai.usage.output_tokens"] > 0
    assert server_attrs["herd.node"] == "a"
    assert attempt_attrs["server.address"] == "127.0.0.1"
    assert attempt_attrs["server.port"] == int(node.url.rsplit(":", 1)[1])
