"""OpenTelemetry export: spans built from each finished :class:`~herd.RequestTrace`.

Nothing is instrumented on the hot path. ``submit`` queues the finished trace; a
background thread hands batches to an exporter child process, which turns each trace
into spans with the trace's own timestamps (a server span, a ``herd.route`` child with
the routing decision, one ``herd.attempt`` child per node call) and exports them over
OTLP/HTTP. The spans carry the GenAI semantic-convention attributes (``gen_ai.*``).

A request that came with a W3C ``traceparent`` gets its server span parented there; one
that did not gets a trace id derived from its request id (the ``trace_id`` column of the
DuckDB store holds the same value). Options live under YAML ``plugins.options.otel``;
with no ``otlp_endpoint`` the sink is inactive and ``submit`` returns at once. Needs the
``otel`` extra: ``pip install 'herd-gateway[otel]'``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from herd import RequestTrace, TraceSink, hookimpl
from herd.router import Router

from herd_plugins.batching import BatchWorker
from herd_plugins.sink_otel.process import ExporterConfig, ExporterProcess
from herd_plugins.sink_otel.spans import SpanBuilder

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["OtelSink"]

log = logging.getLogger("herd.otel")


class OtelSink(TraceSink):
    """Exports every request as OpenTelemetry spans over OTLP/HTTP.

    With an ``otlp_endpoint`` the spans are built and exported by a child process
    (:mod:`herd_plugins.sink_otel.process`), so the SDK's pure-Python encoder never holds the
    router's interpreter lock; the router only hands it msgspec-encoded batches.

    Args:
        exporter: A span exporter to use in this process instead of OTLP/HTTP (tests pass
            the SDK's ``InMemorySpanExporter``); it makes the sink active without an
            endpoint.
    """

    name = "otel"

    class Config(TraceSink.Config, forbid_unknown_fields=True):
        """Options under ``plugins.options.otel``."""

        otlp_endpoint: Annotated[
            str,
            msgspec.Meta(
                description="OTLP/HTTP collector URL, e.g. http://127.0.0.1:4318 "
                "(/v1/traces is added when missing); empty turns export off."
            ),
        ] = ""
        service_name: Annotated[str, msgspec.Meta(description="service.name of the spans.")] = (
            "herd"
        )
        headers: Annotated[
            dict[str, str], msgspec.Meta(description="Extra HTTP headers for the collector.")
        ] = {}
        timeout: Annotated[
            float, msgspec.Meta(gt=0, description="Seconds one export may take.")
        ] = 10.0
        batch_size: Annotated[
            int, msgspec.Meta(ge=1, description="Most requests exported in one OTLP call.")
        ] = 512
        export_interval: Annotated[
            float, msgspec.Meta(gt=0, description="Seconds a request may wait for its batch.")
        ] = 2.0
        queue_size: Annotated[
            int, msgspec.Meta(ge=1, description="Requests waiting at most; more are dropped.")
        ] = 20_000
        sample_ratio: Annotated[
            float,
            msgspec.Meta(
                ge=0,
                le=1,
                description="Share of requests without a traceparent that are exported; "
                "a request with one follows its caller's sampled flag.",
            ),
        ] = 1.0

    def __init__(
        self, config: Any = None, data_dir: str = "", *, exporter: SpanExporter | None = None
    ) -> None:
        super().__init__(config or self.Config(), data_dir)
        self.active = bool(self.config.otlp_endpoint) or exporter is not None
        self._exported = 0
        self._unsampled = 0
        self._failed = 0
        self.node_urls: dict[str, str] = {}
        self._exporter = exporter
        self._builder: SpanBuilder | None = None
        self._process: ExporterProcess | None = None
        self._worker = BatchWorker(
            "herd-otel-export",
            self._export,
            batch_size=self.config.batch_size,
            interval=self.config.export_interval,
            queue_size=self.config.queue_size,
        )

    @property
    def exported(self) -> int:
        """Requests whose spans the collector accepted."""
        return self._exported + (self._process.report.exported if self._process else 0)

    @property
    def unsampled(self) -> int:
        """Requests left out by sampling."""
        return self._unsampled + (self._process.report.unsampled if self._process else 0)

    @property
    def failed(self) -> int:
        """Requests whose export failed (or that the exporter process never got)."""
        return self._failed + (self._process.report.failed if self._process else 0)

    @property
    def dropped(self) -> int:
        """Requests whose spans were not exported (queue full, or the export failed)."""
        return self._worker.rejected + self.failed

    def set_node_urls(self, urls: dict[str, str]) -> None:
        """Node name to base URL, for ``server.address`` on the attempt spans."""
        self.node_urls.update(urls)
        if self._process is not None:
            self._process.send_nodes(urls)

    def submit(self, trace: RequestTrace) -> None:
        if self.active:
            self._worker.offer(trace)

    async def start(self) -> None:
        if not self.active:
            return
        try:
            self._builder = SpanBuilder(
                self.config.service_name, self.node_urls, self.config.sample_ratio
            )
            import opentelemetry.exporter.otlp.proto.http  # noqa: F401 - fail here, not later
        except ImportError as exc:
            raise RuntimeError(
                "plugins.options.otel.otlp_endpoint is set but OpenTelemetry is not "
                f"installed ({exc}); install it with: pip install 'herd-gateway[otel]'"
            ) from exc
        if self._exporter is None:
            endpoint = self.config.otlp_endpoint.rstrip("/")
            if not endpoint.endswith("/v1/traces"):
                endpoint += "/v1/traces"
            settings = ExporterConfig(
                endpoint=endpoint,
                headers=self.config.headers,
                timeout=self.config.timeout,
                service_name=self.config.service_name,
                sample_ratio=self.config.sample_ratio,
            )
            self._process = ExporterProcess(settings)
            await asyncio.to_thread(self._process.start)
            self._process.send_nodes(self.node_urls)
        self._worker.start()
        log.info("exporting traces over OTLP/HTTP to %s", self.config.otlp_endpoint or "(test)")

    async def stop(self) -> None:
        await asyncio.to_thread(self.close)

    async def flush(self) -> None:
        """Wait until the spans of every request submitted so far were exported."""
        await asyncio.to_thread(self.flush_now)

    def flush_now(self, timeout: float | None = 60.0) -> bool:
        if not self._worker.flush(timeout):
            return False
        return self._process.flush(timeout) if self._process is not None else True

    def close(self) -> None:
        self._worker.stop()
        if self._process is not None:
            self._process.stop(self.config.timeout * 3)
        if self._exporter is not None:
            self._exporter.shutdown()

    def _export(self, batch: list[RequestTrace]) -> None:
        if self._process is not None:
            if not self._process.send_traces(batch):
                self._failed += len(batch)
                log.warning("the OTLP exporter process is gone: %d requests lost", len(batch))
            return
        from opentelemetry.sdk.trace.export import SpanExportResult

        assert self._builder is not None and self._exporter is not None
        spans: list[Any] = []
        sampled = 0
        try:
            for trace in batch:
                built = self._builder.spans(trace)
                if built:
                    spans.extend(built)
                    sampled += 1
            ok = not spans or self._exporter.export(spans) == SpanExportResult.SUCCESS
        except Exception:
            log.exception("building or exporting spans failed")
            ok = False
        self._unsampled += len(batch) - sampled
        if ok:
            self._exported += sampled
        else:
            self._failed += sampled


@hookimpl
def herd_register_sinks() -> list[type[TraceSink]]:
    return [OtelSink]


@hookimpl
def herd_startup(router: Router) -> None:
    """Give the app's OTel sink the node URLs, for ``server.address`` on attempt spans."""
    for sink in router.sinks:
        if isinstance(sink, OtelSink):
            sink.set_node_urls({view.name: view.url for view in router.nodes()})
