"""The DuckDB trace sink: every request's trace lands in the file, through the real path."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from herd.trace import AttemptRecord
from herd_plugins.sink_duckdb import DuckDBSink
from herd_plugins.sink_duckdb.schema import LATEST_VERSION, migrate
from herd_plugins.sink_otel.trace_context import derived_trace_id
from trace_factory import make_trace

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def make_sink(data_dir: Path | str, **options: Any) -> DuckDBSink:
    options.setdefault("retention_days", 0)
    sink = DuckDBSink(DuckDBSink.Config(**options), str(data_dir))
    asyncio.run(sink.start())
    return sink


def stop(sink: DuckDBSink) -> None:
    asyncio.run(sink.stop())


def read_rows(path: Path, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with duckdb.connect(str(path), read_only=True) as con:
        cursor = con.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_traces_of_every_status_land_with_their_fields(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    now = time.time()
    failed_attempt = AttemptRecord("n2", now - 5, now - 4.9, "node n2 answered 500: boom", 500)
    traces = [
        make_trace(now=now, ago=5, tags=["app:chat", "team:a"], traceparent=TRACEPARENT),
        make_trace(now=now, ago=4, status="failed", error="node n1 failed mid-stream"),
        make_trace(
            now=now,
            ago=3,
            retries=1,
            excluded_nodes=["n2"],
            attempts=[failed_attempt, AttemptRecord("n1", now - 4.9, now - 4.8, "", 200)],
        ),
        make_trace(now=now, ago=2, status="client_disconnected", completion_tokens=3),
        make_trace(
            now=now,
            ago=1,
            node="",
            model="nope",
            status="rejected",
            http_status=404,
            error="model 'nope' not found",
            latency_ms=0.0,
            prompt_tokens=0,
            completion_tokens=0,
            rejections={"n1": "model not on this node"},
        ),
    ]
    for trace in traces:
        sink.submit(trace)
    stop(sink)

    rows = read_rows(tmp_path / "herd.duckdb", "SELECT * FROM traces ORDER BY received_at")
    assert [r["status"] for r in rows] == [
        "completed",
        "failed",
        "completed",
        "client_disconnected",
        "rejected",
    ]
    assert [r["request_id"] for r in rows] == [t.request_id for t in traces]
    completed, failed, retried, disconnected, rejected = rows
    assert completed["tags"] == ["app:chat", "team:a"]
    assert completed["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert completed["traceparent"] == TRACEPARENT
    assert completed["received_at"].timestamp() == pytest.approx(traces[0].received_at, abs=1e-5)
    assert completed["ttft_ms"] == 100.0 and completed["latency_ms"] == 1000.0
    assert (completed["prompt_tokens"], completed["completion_tokens"]) == (10, 20)
    assert '"queue-depth":0.5' in completed["scores"]
    assert failed["error"] == "node n1 failed mid-stream"
    assert retried["retries"] == 1 and retried["excluded_nodes"] == ["n2"]
    assert '"error":"node n2 answered 500: boom"' in retried["attempts"]
    assert disconnected["completion_tokens"] == 3
    assert rejected["node"] == "" and rejected["http_status"] == 404
    assert rejected["first_byte_at"] is None
    assert rejected["tags"] == [] and rejected["trace_id"] == derived_trace_id(traces[4].request_id)
    assert '"model not on this node"' in rejected["rejections"]
    assert sink.written == 5 and sink.dropped == 0


def test_a_restart_keeps_the_traces(tmp_path: Path) -> None:
    first = make_sink(tmp_path)
    for _ in range(3):
        first.submit(make_trace())
    stop(first)
    second = make_sink(tmp_path)
    second.submit(make_trace())
    asyncio.run(second.flush())
    with second.reader() as cursor:
        assert cursor.execute("SELECT count(*) FROM traces").fetchone() == (4,)
    stop(second)


def test_a_version_1_file_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "herd.duckdb"
    with duckdb.connect(str(path)) as con:
        assert migrate(con, target=1) == 1
        con.execute(
            """INSERT INTO traces (request_id, received_at, api, endpoint, kind, model, node,
                                   status, latency_ms, tags)
               VALUES ('old1', TIMESTAMP '2025-01-02 03:04:05', 'ollama', 'chat', 'text',
                       'llama3.2:3b', 'n1', 'completed', 1234.5, ['app:legacy'])"""
        )
    sink = make_sink(tmp_path)
    sink.submit(make_trace(load_ms=2500.0, traceparent=TRACEPARENT))
    stop(sink)

    versions = read_rows(path, "SELECT version FROM herd_schema ORDER BY version")
    assert [v["version"] for v in versions] == list(range(1, LATEST_VERSION + 1))
    old, new = read_rows(path, "SELECT * FROM traces ORDER BY received_at")
    assert old["request_id"] == "old1" and old["latency_ms"] == 1234.5
    assert old["tags"] == ["app:legacy"]
    assert old["trace_id"] == derived_trace_id("old1")
    assert (old["scores"], old["attempts"], old["load_ms"], old["api_key"]) == ("{}", "[]", 0, "")
    assert new["load_ms"] == 2500.0 and new["trace_id"] == TRACEPARENT.split("-")[1]


def test_a_file_from_a_newer_herd_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "herd.duckdb"
    with duckdb.connect(str(path)) as con:
        migrate(con)
        con.execute("INSERT INTO herd_schema VALUES (999, TIMESTAMP '2030-01-01', 'future')")
    sink = DuckDBSink(DuckDBSink.Config(), str(tmp_path))
    with pytest.raises(RuntimeError, match="newer than this herd"):
        asyncio.run(sink.start())


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    sink = DuckDBSink(DuckDBSink.Config(queue_size=3, retention_days=0), str(tmp_path))
    for _ in range(5):  # the writer is not running yet: the queue fills up
        sink.submit(make_trace())
    assert (sink.rejected, sink.dropped) == (2, 2)
    asyncio.run(sink.start())
    stop(sink)
    assert sink.written == 3
    sink.submit(make_trace())  # after stop: counted, not queued
    assert sink.dropped == 3


def test_batches_are_written_without_an_explicit_flush(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, batch_size=2, flush_interval=0.05)
    for _ in range(5):
        sink.submit(make_trace())
    deadline = time.monotonic() + 20
    while sink.written < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sink.written == 5
    stop(sink)


def test_traces_older_than_the_retention_are_pruned(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, retention_days=1, prune_interval=0.05)
    sink.submit(make_trace(ago=3 * 86400))
    sink.submit(make_trace(ago=10))
    asyncio.run(sink.flush())
    deadline = time.monotonic() + 20
    while sink.pruned < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    with sink.reader() as cursor:
        assert cursor.execute("SELECT count(*) FROM traces").fetchone() == (1,)
    assert sink.pruned == 1
    stop(sink)


def test_an_empty_data_dir_keeps_traces_in_memory() -> None:
    sink = make_sink("")
    assert sink.path == ":memory:"
    sink.submit(make_trace())
    asyncio.run(sink.flush())
    with sink.reader() as cursor:
        assert cursor.execute("SELECT count(*) FROM traces").fetchone() == (1,)
    stop(sink)


def _chat(router: Any, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    return httpx.post(f"{router.url}/api/chat", json=body, timeout=30, **extra)


def test_requests_through_the_router_leave_traces(make_sim: Any, make_router: Any) -> None:
    node = make_sim(name="a")
    options = {"duckdb": {"batch_size": 2, "flush_interval": 0.05}}
    router = make_router(nodes=[node], plugins={"options": options})
    sink = next(s for s in router.gateway.sinks if isinstance(s, DuckDBSink))
    assert sink.config.batch_size == 2
    assert Path(sink.path).parent == router.settings.data_path

    assert _chat(router, "llama3.2:3b", headers={"traceparent": TRACEPARENT}).status_code == 200
    node.fail(1, status=500)
    assert _chat(router, "llama3.2:3b").status_code == 502
    assert _chat(router, "no-such-model").status_code == 404
    router.call(sink.flush())

    with sink.reader() as cursor:
        cursor.execute(
            """SELECT status, model, served_model, node, http_status, error, prompt_tokens,
                      completion_tokens, ttft_ms, trace_id, excluded_nodes, attempts
               FROM traces ORDER BY received_at"""
        )
        rows = cursor.fetchall()
    completed, failed, rejected = rows
    assert completed[:5] == ("completed", "llama3.2:3b", "llama3.2:3b", "a", 200)
    assert completed[6] > 0 and completed[7] > 0 and completed[8] > 0
    assert completed[9] == TRACEPARENT.split("-")[1]
    assert failed[0] == "failed" and failed[4] == 502 and "500" in failed[5]
    assert failed[10] == ["a"] and '"status":500' in failed[11]
    assert rejected[:2] == ("rejected", "no-such-model") and rejected[4] == 404

    page = httpx.get(f"{router.url}/dashboard/api/traces", params={"status": "failed"}).json()
    assert page["total"] == 1
    request_id = page["traces"][0]["request_id"]
    detail = httpx.get(f"{router.url}/dashboard/api/traces/{request_id}").json()
    assert detail["attempts"][0]["node"] == "a"


def test_session_and_routing_notes_are_stored(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    trace = make_trace(session="conv-42", notes=["num_ctx pinned to 8192", "auto-pulled"])
    sink.submit(trace)
    stop(sink)
    (row,) = read_rows(tmp_path / "herd.duckdb", "SELECT session, notes FROM traces")
    assert row == {"session": "conv-42", "notes": ["num_ctx pinned to 8192", "auto-pulled"]}
