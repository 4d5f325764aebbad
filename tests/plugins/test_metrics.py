"""``GET /metrics``: the Prometheus text format, checked with Prometheus' own parser."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
from herd_plugins.metrics_prometheus import MetricsSink
from prometheus_client.parser import text_string_to_metric_families
from trace_factory import make_trace


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(parsed: dict[Any, float], name: str, **labels: str) -> float | None:
    return parsed.get((name, tuple(sorted(labels.items()))))


def render(sink: MetricsSink) -> str:
    return sink.render(SimpleNamespace(sinks=[sink], nodes=list))


def test_histograms_are_cumulative_with_sum_and_count() -> None:
    sink = MetricsSink(MetricsSink.Config(latency_buckets=(0.5, 1.0, 5.0)))
    for latency_ms in (200, 700, 1000, 9000):
        sink.submit(make_trace(latency_ms=latency_ms, ttft_ms=latency_ms / 10))
    parsed = samples(render(sink))
    labels = {"model": "llama3.2:3b", "node": "n1"}
    buckets = [
        value(parsed, "herd_request_duration_seconds_bucket", **labels, le=le)
        for le in ("0.5", "1.0", "5.0", "+Inf")
    ]
    assert buckets == [1, 3, 3, 4]
    assert value(parsed, "herd_request_duration_seconds_count", **labels) == 4
    assert value(parsed, "herd_request_duration_seconds_sum", **labels) == 10.9
    assert value(parsed, "herd_time_to_first_token_seconds_count", **labels) == 4


def test_requests_retries_fallbacks_and_tokens_are_counted() -> None:
    sink = MetricsSink()
    sink.submit(make_trace())
    sink.submit(make_trace(retries=2, excluded_nodes=["n2", "n3"]))
    sink.submit(make_trace(node="", status="rejected", model="nope", prompt_tokens=0))
    sink.submit(make_trace(node="", status="failed", retries=1, prompt_tokens=0))
    parsed = samples(render(sink))
    ok = {"model": "llama3.2:3b", "node": "n1", "status": "completed"}
    assert value(parsed, "herd_requests_total", **ok) == 2
    assert value(parsed, "herd_requests_total", model="nope", node="", status="rejected") == 1
    assert value(parsed, "herd_retries_total", model="llama3.2:3b") == 3
    assert value(parsed, "herd_fallbacks_total", model="llama3.2:3b") == 1
    assert value(parsed, "herd_tokens_total", model="llama3.2:3b", node="n1", type="input") == 20
    assert value(parsed, "herd_tokens_total", model="llama3.2:3b", node="n1", type="output") == 40
    # A request that never reached a node has no latency to observe.
    assert value(parsed, "herd_request_duration_seconds_count", model="nope", node="") is None


def test_an_operators_action_is_no_request() -> None:
    sink = MetricsSink()
    sink.submit(make_trace(kind="action", endpoint="pull", status="failed", latency_ms=90_000))
    parsed = samples(render(sink))
    assert not [key for key in parsed if key[0].startswith(("herd_requests", "herd_request_"))]


def test_model_labels_are_bounded_and_escaped() -> None:
    sink = MetricsSink(MetricsSink.Config(max_models=2))
    for model in ('we"ird\\name', "b", "c", "d"):
        sink.submit(make_trace(node="", served_model="", model=model, status="rejected"))
    parsed = samples(render(sink))
    rejected = {"node": "", "status": "rejected"}
    assert value(parsed, "herd_requests_total", model='we"ird\\name', **rejected) == 1
    assert value(parsed, "herd_requests_total", model="b", **rejected) == 1
    assert value(parsed, "herd_requests_total", model="(other)", **rejected) == 2


def test_metrics_page_shows_requests_fleet_state_and_dropped_traces(make_router: Any) -> None:
    dead = {"name": "dead", "url": "http://127.0.0.1:9"}  # discard port: nothing answers
    router = make_router(nodes=[dead], fleet={"poll_interval": 3600})

    async def finish_and_mark_busy() -> None:
        router.gateway.finish(make_trace(node="dead"))
        router.gateway.finish(make_trace(node="", status="rejected", model="nope"))
        view = router.gateway.fleet.nodes["dead"].view
        view.in_flight = 3
        view.in_flight_by_model = {"llama3.2:3b": 3}

    router.call(finish_and_mark_busy())
    reply = httpx.get(f"{router.url}/metrics", timeout=30)
    assert reply.status_code == 200
    # exactly one charset: Prometheus 3 refuses a Content-Type with a repeated parameter
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    parsed = samples(reply.text)
    served = {"model": "llama3.2:3b", "node": "dead"}
    assert value(parsed, "herd_requests_total", **served, status="completed") == 1
    assert value(parsed, "herd_requests_total", model="nope", node="", status="rejected") == 1
    assert value(parsed, "herd_request_duration_seconds_count", **served) == 1
    assert value(parsed, "herd_nodes", state="offline") == 1
    assert value(parsed, "herd_nodes", state="online") == 0
    assert value(parsed, "herd_node_up", node="dead") == 0
    assert value(parsed, "herd_node_in_flight", node="dead") == 3
    assert value(parsed, "herd_in_flight_requests", node="dead", model="llama3.2:3b") == 3
    assert value(parsed, "herd_traces_dropped_total", sink="duckdb") == 0
