"""The OTLP exporter in a child process, so span encoding never competes with the router.

Encoding spans with the OpenTelemetry SDK's OTLP encoder is pure Python (about 0.1 ms per
request); in the router's process it would share the interpreter lock with the event loop
and cut a CPU-bound router's throughput by a quarter. The router side only encodes each
batch of finished traces with msgspec (microseconds) and writes it down a pipe; this
module's ``main`` (run as ``python -m herd_plugins.sink_otel.process``) builds the spans and
exports them.

Protocol, one JSON object per line. Parent to child: the config first, then
``{"traces": [...]}``, ``{"nodes": {name: url}}`` or ``{"flush": n}``. Child to parent:
``{"exported": n, "failed": n, "unsampled": n}`` (running totals) after each batch and
``{"flushed": n}`` once everything before flush ``n`` was exported. The child ignores
SIGINT and exits when its stdin closes, after exporting what it was sent.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
from typing import Any

import msgspec
from herd import RequestTrace

__all__ = ["ExporterConfig", "ExporterProcess", "main"]

log = logging.getLogger("herd.otel")


class ExporterConfig(msgspec.Struct):
    """What the child needs to export: the collector and the span settings."""

    endpoint: str
    headers: dict[str, str] = {}
    timeout: float = 10.0
    service_name: str = "herd"
    sample_ratio: float = 1.0


class _Message(msgspec.Struct, omit_defaults=True):
    traces: list[RequestTrace] | None = None
    nodes: dict[str, str] | None = None
    flush: int | None = None


class _Report(msgspec.Struct, omit_defaults=True):
    exported: int = 0
    failed: int = 0
    unsampled: int = 0
    flushed: int | None = None


class ExporterProcess:
    """The router's handle on the exporter child: send batches, flush, read its counts."""

    def __init__(self, config: ExporterConfig) -> None:
        self.config = config
        self.report = _Report()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._flushes: dict[int, threading.Event] = {}
        self._next_flush = 0

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "herd_plugins.sink_otel.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read, name="herd-otel-reader", daemon=True)
        self._reader.start()
        self._send(msgspec.json.encode(self.config))

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def send_traces(self, traces: list[RequestTrace]) -> bool:
        """Hand a batch to the child; False when it is gone (the batch is lost)."""
        return self._send(msgspec.json.encode(_Message(traces=traces)))

    def send_nodes(self, nodes: dict[str, str]) -> bool:
        return self._send(msgspec.json.encode(_Message(nodes=nodes)))

    def flush(self, timeout: float | None) -> bool:
        """Wait until the child exported everything sent before this call."""
        with self._lock:
            self._next_flush += 1
            number = self._next_flush
            done = self._flushes[number] = threading.Event()
        if not self._send(msgspec.json.encode(_Message(flush=number))):
            return False
        return done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Close the child's stdin, let it export what it has, and wait for it."""
        if self._proc is None:
            return
        with self._lock, contextlib.suppress(OSError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the OTLP exporter process did not finish in %gs; stopping it", timeout)
            self._proc.kill()
            self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout)
        self._proc = None

    def _send(self, line: bytes) -> bool:
        with self._lock:
            if not self.alive:
                return False
            assert self._proc is not None and self._proc.stdin is not None
            try:
                self._proc.stdin.write(line + b"\n")
                self._proc.stdin.flush()
            except OSError:
                return False
        return True

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        decode = msgspec.json.Decoder(_Report).decode
        for line in self._proc.stdout:
            try:
                report = decode(line)
            except msgspec.DecodeError:
                continue
            if report.flushed is not None:
                event = self._flushes.pop(report.flushed, None)
                if event is not None:
                    event.set()
            else:
                self.report = report
        for event in self._flushes.values():  # the child is gone: nobody will answer
            event.set()


def main() -> None:
    """The child: read traces from stdin, export their spans, report on stdout."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from herd_plugins.sink_otel.spans import SpanBuilder

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s herd.otel: %(message)s")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    config = msgspec.json.decode(stdin.readline(), type=ExporterConfig)
    node_urls: dict[str, str] = {}
    builder = SpanBuilder(config.service_name, node_urls, config.sample_ratio)
    exporter = OTLPSpanExporter(
        endpoint=config.endpoint, headers=config.headers, timeout=config.timeout
    )
    decode = msgspec.json.Decoder(_Message).decode
    totals = _Report()

    def report(message: _Report) -> None:
        stdout.write(msgspec.json.encode(message) + b"\n")
        stdout.flush()

    for line in stdin:
        message = decode(line)
        if message.nodes is not None:
            node_urls.update(message.nodes)
        if message.flush is not None:
            report(_Report(flushed=message.flush))
        if not message.traces:
            continue
        spans: list[Any] = []
        sampled = 0
        for trace in message.traces:
            built = builder.spans(trace)
            if built:
                spans.extend(built)
                sampled += 1
        totals.unsampled += len(message.traces) - sampled
        ok = not spans or exporter.export(spans) == SpanExportResult.SUCCESS
        if ok:
            totals.exported += sampled
        else:
            totals.failed += sampled
        report(totals)
    exporter.shutdown()


if __name__ == "__main__":
    main()
