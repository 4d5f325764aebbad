"""The analytics queries and their endpoints, checked against a known set of traces.

The traces go in through the DuckDB sink, so the tests read what the real path wrote.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from herd import RequestTrace
from herd_plugins.dashboard import analytics
from herd_plugins.dashboard.series import bucket_step, series
from herd_plugins.sink_duckdb import DuckDBSink
from trace_factory import make_trace

NOW = datetime(2025, 6, 1, 12, 30, tzinfo=UTC).timestamp()
HOUR, DAY = 3600.0, 86400.0
QWEN, LLAMA = "qwen2.5:7b", "llama3.2:3b"


def known_traces(now: float) -> list[RequestTrace]:
    """Six requests: three in the last half hour, a rejection, one 3 h and one 2 days old."""
    return [
        make_trace(now=now, ago=10 * 60, latency_ms=1000, ttft_ms=100, tags=["app:chat"]),
        make_trace(
            now=now,
            ago=20 * 60,
            node="n2",
            latency_ms=2000,
            ttft_ms=200,
            prompt_tokens=30,
            completion_tokens=40,
            tokens_per_second=20.0,
            load_ms=1500.0,
            tags=["app:chat", "team:x"],
        ),
        make_trace(
            now=now,
            ago=25 * 60,
            model=QWEN,
            served_model=QWEN,
            status="failed",
            error="node n1 failed mid-stream",
            latency_ms=500,
            ttft_ms=50,
            prompt_tokens=5,
            completion_tokens=0,
            tokens_per_second=0.0,
            tags=["app:batch"],
        ),
        make_trace(
            now=now,
            ago=40 * 60,
            model="nope",
            node="",
            status="rejected",
            http_status=404,
            latency_ms=0,
            prompt_tokens=0,
            completion_tokens=0,
            tokens_per_second=0.0,
        ),
        make_trace(
            now=now,
            ago=3 * HOUR,
            latency_ms=3000,
            ttft_ms=300,
            prompt_tokens=5,
            completion_tokens=5,
            tokens_per_second=10.0,
            tags=["app:batch"],
        ),
        make_trace(
            now=now,
            ago=2 * DAY,
            node="n2",
            status="client_disconnected",
            latency_ms=4000,
            ttft_ms=400,
            prompt_tokens=1,
            completion_tokens=2,
            tokens_per_second=0.0,
            tags=["app:chat"],
        ),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on a trace store holding :func:`known_traces` at ``NOW``."""
    sink = DuckDBSink(DuckDBSink.Config(retention_days=0), str(tmp_path))
    asyncio.run(sink.start())
    for trace in known_traces(NOW):
        sink.submit(trace)
    asyncio.run(sink.flush())
    with sink.reader() as cursor:
        yield cursor
    asyncio.run(sink.stop())


def pick(row: dict[str, Any], *keys: str) -> tuple[Any, ...]:
    return tuple(row[k] for k in keys)


def test_overview_counts_the_last_hour_the_last_day_and_each_node(store: Any) -> None:
    result = analytics.overview(store, NOW)
    hour, day = result["hour"], result["day"]
    assert pick(hour, "requests", "errors", "rejected", "error_rate") == (4, 1, 1, 0.25)
    assert pick(hour, "p50_latency_ms", "p95_latency_ms") == pytest.approx((1500, 1950))
    assert pick(hour, "p50_ttft_ms", "p95_ttft_ms") == pytest.approx((100, 190))
    assert pick(hour, "prompt_tokens", "completion_tokens", "tokens_per_second") == (45, 60, 30)
    assert pick(day, "requests", "errors", "rejected", "error_rate") == (5, 1, 1, 0.2)
    assert pick(day, "p50_latency_ms", "p95_latency_ms") == pytest.approx((2000, 2900))
    assert pick(day, "p50_ttft_ms", "p95_ttft_ms") == pytest.approx((150, 285))
    assert pick(day, "prompt_tokens", "completion_tokens") == (50, 65)
    assert day["tokens_per_second"] == pytest.approx(70 / 3)
    assert [pick(n, "node", "requests", "errors") for n in result["nodes"]] == [
        ("n1", 3, 1),
        ("n2", 1, 0),
    ]
    assert result["traces"] == 6
    assert result["oldest"] == pytest.approx(NOW - 2 * DAY, abs=1e-3)


def test_trends_are_hourly_and_zero_filled(store: Any) -> None:
    result = analytics.trends(store, NOW, hours=3)
    points = result["series"]["all"]
    hour_start = datetime(2025, 6, 1, 10, tzinfo=UTC).timestamp()
    assert [p["t"] for p in points] == [hour_start, hour_start + HOUR, hour_start + 2 * HOUR]
    assert [(p["requests"], p["errors"]) for p in points] == [(0, 0), (1, 0), (3, 1)]
    assert points[0]["p50_latency_ms"] is None
    assert points[2]["p50_latency_ms"] == pytest.approx(1500)
    assert points[2]["completion_tokens"] == 60


def test_trends_by_model_and_by_node(store: Any) -> None:
    by_model = analytics.trends(store, NOW, hours=3, by="model")["series"]
    assert sorted(by_model) == [LLAMA, "nope", QWEN]
    assert [p["requests"] for p in by_model[LLAMA]] == [0, 0, 2]
    assert [p["requests"] for p in by_model["nope"]] == [0, 1, 0]
    assert by_model[QWEN][2]["errors"] == 1
    by_node = analytics.trends(store, NOW, hours=3, by="node")["series"]
    assert {k: [p["requests"] for p in v] for k, v in by_node.items()} == {
        "(none)": [0, 1, 0],
        "n1": [0, 0, 2],
        "n2": [0, 0, 1],
    }
    with pytest.raises(ValueError):
        analytics.trends(store, NOW, by="colour")


def test_models_report_usage_latency_cold_loads_and_nodes(store: Any) -> None:
    rows = analytics.models(store, NOW)
    # "nope" was rejected before any node served it: the client's mistake, not a model
    assert [r["model"] for r in rows] == [LLAMA, QWEN]
    llama, qwen = rows
    assert pick(llama, "requests", "errors", "cold_loads", "avg_cold_load_ms") == (4, 0, 1, 1500)
    assert pick(llama, "prompt_tokens", "completion_tokens") == (46, 67)
    assert llama["p50_latency_ms"] == pytest.approx(2000)
    assert llama["nodes"] == ["n1", "n2"]
    assert llama["last_seen"] == pytest.approx(NOW - 600, abs=1e-3)
    assert pick(qwen, "requests", "errors", "nodes") == (1, 1, ["n1"])
    last_hour = analytics.models(store, NOW, hours=1)
    assert {r["model"]: r["requests"] for r in last_hour} == {LLAMA: 2, QWEN: 1}


def test_tags_count_each_request_under_each_of_its_tags(store: Any) -> None:
    rows = analytics.tags(store, NOW)
    assert [pick(r, "tag", "requests", "errors") for r in rows] == [
        ("app:chat", 3, 0),
        ("app:batch", 2, 1),
        ("team:x", 1, 0),
    ]
    chat, batch, _ = rows
    assert pick(chat, "prompt_tokens", "completion_tokens") == (41, 62)
    assert batch["error_rate"] == 0.5
    assert chat["p50_ttft_ms"] == pytest.approx(200)


def test_apps_have_a_summary_and_a_zero_filled_daily_series(store: Any) -> None:
    result = analytics.apps(store, NOW, days=7)
    apps = {a["app"]: a for a in result["apps"]}
    assert [a["app"] for a in result["apps"]] == ["app:chat", "app:batch", "(untagged)", "team:x"]
    assert apps["(untagged)"]["rejected"] == 1 and apps["(untagged)"]["errors"] == 0
    chat = apps["app:chat"]["daily"]
    today = datetime(2025, 6, 1, tzinfo=UTC).timestamp()
    assert [p["t"] for p in chat] == [today - d * DAY for d in range(6, -1, -1)]
    assert [p["requests"] for p in chat] == [0, 0, 0, 0, 1, 0, 2]
    assert chat[-1]["completion_tokens"] == 60
    assert sum(p["requests"] for p in apps["app:batch"]["daily"]) == 2


def test_dashboard_endpoints_answer_with_the_same_numbers(make_router: Any) -> None:
    router = make_router()
    sink = next(s for s in router.gateway.sinks if isinstance(s, DuckDBSink))
    traces = known_traces(time.time())

    async def submit_all() -> None:
        for trace in traces:
            router.gateway.finish(trace)
        await sink.flush()

    router.call(submit_all())

    def get(path: str, **params: Any) -> Any:
        response = httpx.get(f"{router.url}/dashboard/api/{path}", params=params, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    overview = get("overview")
    assert pick(overview["hour"], "requests", "errors") == (4, 1)
    assert overview["day"]["p50_latency_ms"] == pytest.approx(2000)
    assert overview["store"]["written"] == 6
    trends = get("trends", hours=24, by="node")
    assert sum(p["requests"] for p in trends["series"]["n1"]) == 3
    models = get("models")
    assert [(m["model"], m["requests"]) for m in models] == [(LLAMA, 4), (QWEN, 1)]
    assert [(t["tag"], t["requests"]) for t in get("tags")] == [
        ("app:chat", 3),
        ("app:batch", 2),
        ("team:x", 1),
    ]
    assert len(get("apps", days=3)["apps"][0]["daily"]) == 3
    page = get("traces", limit=1, tag="app:batch")
    assert page["total"] == 2 and page["traces"][0]["model"] == QWEN
    for path, params in [("trends", {"hours": 0}), ("traces", {"limit": 10_000})]:
        bad = httpx.get(f"{router.url}/dashboard/api/{path}", params=params, timeout=30)
        assert bad.status_code == 400
        assert next(iter(params)) + ":" in bad.json()["error"]  # names the parameter


def test_the_health_error_count_leaves_client_rejections_out(store: Any) -> None:
    from herd_plugins.dashboard.health import trace_counts

    counts = trace_counts(store, NOW)  # last hour: two served, one failed, one rejected
    assert counts["requests"] == 4
    assert counts["errors"] == 1  # the node's mid-stream failure; "nope" was the client's


def test_series_totals_speak_of_the_same_window_as_the_buckets(store: Any) -> None:
    hour = series(store, NOW, "hour")
    assert hour["step"] == 60 and len(hour["series"]["all"]) == 60
    assert hour["totals"]["requests"] == sum(p["requests"] for p in hour["series"]["all"]) == 4
    assert hour["totals"]["errors"] == 1 and hour["totals"]["rejected"] == 1
    day = series(store, NOW, "day")
    assert day["step"] == 900 and day["totals"]["requests"] == 5


def test_a_custom_range_gets_buckets_that_fit_it(store: Any) -> None:
    custom = series(store, NOW, "custom", since=NOW - 3 * DAY, until=NOW - 1.5 * DAY)
    assert custom["window"] == "custom" and custom["step"] == 900  # 144 buckets
    assert custom["totals"]["requests"] == 1  # the disconnected one, two days ago
    assert custom["since"] <= NOW - 3 * DAY and custom["until"] >= NOW - 1.5 * DAY
    with pytest.raises(ValueError):
        series(store, NOW, "custom", since=NOW, until=NOW - 1)
    assert [bucket_step(s) for s in (3600, 86400, 7 * 86400, 90 * 86400)] == [60, 900, 3600, 43200]


def test_benchmark_traffic_and_actions_stay_out_of_the_summaries(tmp_path: Path) -> None:
    sink = DuckDBSink(DuckDBSink.Config(retention_days=0), str(tmp_path))
    asyncio.run(sink.start())
    sink.submit(make_trace(now=NOW, ago=60))
    sink.submit(make_trace(now=NOW, ago=60, status="failed", tags=[analytics.BENCH_TAG]))
    sink.submit(make_trace(now=NOW, ago=60, status="failed", kind="action", endpoint="pull"))
    asyncio.run(sink.flush())
    with sink.reader() as con:
        assert analytics.overview(con, NOW)["hour"]["requests"] == 1
        with_bench = analytics.overview(con, NOW, bench=True)["hour"]
        assert (with_bench["requests"], with_bench["errors"]) == (2, 1)  # never the action
        assert series(con, NOW, "hour")["totals"]["errors"] == 0
    asyncio.run(sink.stop())
