"""Prometheus metrics at ``GET /metrics``: request counters and histograms, fleet gauges.

Why the text format is written here rather than with ``prometheus_client``: its
metrics live in a process-global registry unless every metric is wired to a registry
of our own, its ``labels().inc()`` takes a lock per update, and it would be one more
dependency of the router. What herd needs (counters, two histograms, gauges read at
scrape time) is a few dicts and a renderer; the tests check the output with
``prometheus_client``'s own parser.

Why a trace sink rather than a ``herd_request_finished`` hook: a sink is an object per
app, so two routers in one process (tests, benchmarks) never share counters; a module-level
hook would need module-global state. The fleet gauges are read from the app's gateway
when Prometheus scrapes, so they cost nothing between scrapes.
"""

from __future__ import annotations

import bisect
import platform
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

import herd
import msgspec
from herd import ACTION_KIND, RequestTrace, TraceSink, hookimpl
from litestar import Request, Response, get
from litestar.exceptions import HTTPException
from litestar.plugins import InitPluginProtocol

if TYPE_CHECKING:
    from litestar.config.app import AppConfig

__all__ = ["MetricsPlugin", "MetricsSink"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "(other)"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[str, ...]


class Histogram:
    """Observations in fixed buckets, one set of counts per label values."""

    __slots__ = ("bounds", "series")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        # labels -> [count per bucket (last is +Inf)..., sum]
        self.series: dict[Labels, list[float]] = {}

    def start(self, labels: Labels) -> list[float]:
        """A new series' counts, all 0 (the last two: +Inf and the sum)."""
        counts = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        return counts


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Labels, values: Iterable[str]) -> str:
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}" if pairs else ""


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class MetricsSink(TraceSink):
    """Counts every finished request for the ``/metrics`` page of its app."""

    name = "prometheus"

    class Config(TraceSink.Config, forbid_unknown_fields=True):
        """Options under ``plugins.options.prometheus``."""

        latency_buckets: Annotated[
            tuple[float, ...], msgspec.Meta(description="Request duration buckets, seconds.")
        ] = LATENCY_BUCKETS
        ttft_buckets: Annotated[
            tuple[float, ...], msgspec.Meta(description="Time-to-first-token buckets, seconds.")
        ] = TTFT_BUCKETS
        max_models: Annotated[
            int, msgspec.Meta(ge=1, description="Distinct model labels; more become (other).")
        ] = 200

    def __init__(self, config: Any = None, data_dir: str = "") -> None:
        super().__init__(config or self.Config(), data_dir)
        self.requests: dict[Labels, int] = {}
        self.tokens: dict[Labels, int] = {}
        self.retries: dict[str, int] = {}
        self.fallbacks: dict[str, int] = {}
        self.latency = Histogram(self.config.latency_buckets)
        self.ttft = Histogram(self.config.ttft_buckets)
        self._models: set[str] = set()

    def _new_model_label(self, model: str) -> str:
        """The label of a model not seen yet: a client can send any model name, so the
        label's values are bounded (past ``max_models``, ``(other)``)."""
        if len(self._models) >= self.config.max_models:
            return OTHER
        self._models.add(model)
        return model

    def submit(self, trace: RequestTrace) -> None:
        # (runs per request: the label and the histograms' buckets are inlined)
        if trace.kind == ACTION_KIND:
            return  # a model action from the dashboard (a pull, a delete) is no request
        model = trace.served_model or trace.model
        if model not in self._models:
            model = self._new_model_label(model)
        node = trace.node
        key = (model, node, trace.status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        if trace.retries:
            self.retries[model] = self.retries.get(model, 0) + trace.retries
            if node:
                self.fallbacks[model] = self.fallbacks.get(model, 0) + 1
        if not node:
            return
        pair = (model, node)
        latency = self.latency
        seconds = trace.latency_ms / 1000.0
        counts = latency.series.get(pair) or latency.start(pair)
        counts[bisect.bisect_left(latency.bounds, seconds)] += 1
        counts[-1] += seconds
        if trace.first_byte_at:
            ttft = self.ttft
            seconds = trace.ttft_ms / 1000.0
            counts = ttft.series.get(pair) or ttft.start(pair)
            counts[bisect.bisect_left(ttft.bounds, seconds)] += 1
            counts[-1] += seconds
        tokens = self.tokens
        if trace.prompt_tokens:
            tkey = (model, node, "input")
            tokens[tkey] = tokens.get(tkey, 0) + trace.prompt_tokens
        if trace.completion_tokens:
            tkey = (model, node, "output")
            tokens[tkey] = tokens.get(tkey, 0) + trace.completion_tokens

    def render(self, gateway: Any, router: Any = None) -> str:
        """The exposition text: this sink's counters plus the fleet's state right now."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        def samples(name: str, names: Labels, values: dict[Any, float]) -> None:
            for labels, value in sorted(values.items()):
                labels = labels if isinstance(labels, tuple) else (labels,)
                out.append(f"{name}{_labels(names, labels)} {_number(value)}")

        family("herd_requests_total", "counter", "Requests finished, by model, node and status.")
        samples("herd_requests_total", ("model", "node", "status"), self.requests)
        family("herd_tokens_total", "counter", "Tokens processed, by model, node and direction.")
        samples("herd_tokens_total", ("model", "node", "type"), self.tokens)
        family("herd_retries_total", "counter", "Node attempts that failed and were retried.")
        samples("herd_retries_total", ("model",), self.retries)
        family("herd_fallbacks_total", "counter", "Requests served by a fallback node.")
        samples("herd_fallbacks_total", ("model",), self.fallbacks)
        self._histogram(
            out, "herd_request_duration_seconds", "Request duration on a node.", self.latency
        )
        self._histogram(
            out, "herd_time_to_first_token_seconds", "Time to the first byte.", self.ttft
        )
        dropped = {
            s.name: float(s.dropped)
            for s in gateway.sinks
            if isinstance(getattr(s, "dropped", None), int)
        }
        family("herd_traces_dropped_total", "counter", "Traces a sink could not keep.")
        samples("herd_traces_dropped_total", ("sink",), dropped)
        self._fleet(out, family, samples, gateway)
        self._queues(out, family, samples, router if router is not None else gateway)
        self._cluster(family, samples, gateway)
        return "\n".join(out) + "\n"

    @staticmethod
    def _cluster(family: Any, samples: Any, gateway: Any) -> None:
        """Replicas sharing state (``cluster.redis_url``); nothing when the router runs alone."""
        status = gateway.cluster_status() if hasattr(gateway, "cluster_status") else {}
        if not status:
            return
        family("herd_cluster_degraded", "gauge", "1 while the shared store is unreachable.")
        samples("herd_cluster_degraded", (), {(): float(status["state"] == "degraded")})
        family("herd_cluster_replicas", "gauge", "Replicas alive, as last seen in the store.")
        samples("herd_cluster_replicas", (), {(): float(status["replicas"])})
        family("herd_cluster_outages_total", "counter", "Times the shared store was lost.")
        samples("herd_cluster_outages_total", (), {(): float(status["outages"])})

    def _histogram(self, out: list[str], name: str, help_text: str, hist: Histogram) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} histogram")
        names = ("model", "node")
        bounds = [*(repr(float(b)) for b in hist.bounds), "+Inf"]  # le="1.0", as Go writes it
        for labels, counts in sorted(hist.series.items()):
            base = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, labels, strict=True))
            running = 0.0
            for bound, count in zip(bounds, counts[:-1], strict=True):
                running += count
                out.append(f'{name}_bucket{{{base},le="{bound}"}} {_number(running)}')
            out.append(f"{name}_sum{{{base}}} {_number(counts[-1])}")
            out.append(f"{name}_count{{{base}}} {_number(running)}")

    @staticmethod
    def _fleet(out: list[str], family: Any, samples: Any, gateway: Any) -> None:
        views = gateway.nodes()
        states = {"online": 0.0, "offline": 0.0, "unknown": 0.0}
        for view in views:
            states[view.status] = states.get(view.status, 0.0) + 1
        family("herd_nodes", "gauge", "Nodes by state.")
        samples("herd_nodes", ("state",), states)
        family("herd_node_up", "gauge", "1 when the node answered its last poll or request.")
        samples("herd_node_up", ("node",), {v.name: float(v.online) for v in views})
        family("herd_node_in_flight", "gauge", "Requests in flight on a node.")
        samples("herd_node_in_flight", ("node",), {v.name: float(v.in_flight) for v in views})
        family("herd_in_flight_requests", "gauge", "Requests in flight by node and model.")
        per_model = {
            (v.name, model): float(count)
            for v in views
            for model, count in v.in_flight_by_model.items()
        }
        samples("herd_in_flight_requests", ("node", "model"), per_model)

    @staticmethod
    def _queues(out: list[str], family: Any, samples: Any, router: Any) -> None:
        """Requests waiting for a slot, from the public Router's queue statistics."""
        queue_stats = getattr(router, "queue_stats", None)  # None: a render with no router
        depth = {
            (node, model): float(stats.get("pending", 0))
            for node, models in (queue_stats() if callable(queue_stats) else {}).items()
            for model, stats in models.items()
        }
        family("herd_queue_depth", "gauge", "Requests waiting in a node's queue for a model.")
        samples("herd_queue_depth", ("node", "model"), depth)
        family("herd_build_info", "gauge", "Always 1; the labels say which herd is running.")
        build = {(herd.__version__, platform.python_version()): 1.0}
        samples("herd_build_info", ("version", "python"), build)


@get("/metrics")
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The Prometheus exposition of this router."""
    gateway = request.app.state.router  # the public herd.router.Router
    for sink in gateway.sinks:
        if isinstance(sink, MetricsSink):
            text = sink.render(gateway, request.app.state.router)
            # Whole, as a header: Litestar would append a second charset to a text/* media_type,
            # and Prometheus 3 refuses a Content-Type with a duplicate parameter.
            return Response(text.encode(), headers={"content-type": CONTENT_TYPE})
    raise HTTPException(status_code=503, detail="the prometheus metrics sink is not running")


class MetricsPlugin(InitPluginProtocol):
    """Adds ``GET /metrics`` to the router's Litestar app."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.append(metrics)
        return app_config


@hookimpl
def herd_register_sinks() -> list[type[TraceSink]]:
    return [MetricsSink]


@hookimpl
def herd_register_litestar_plugins(settings: Any) -> list[Any]:
    return [MetricsPlugin()]
