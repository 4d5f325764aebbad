"""The DuckDB batch insert stores every field of every trace exactly as the trace holds it.

The expected row of a trace is computed here from the trace, independently of the insert:
timestamps to the microsecond, JSON columns as msgspec writes them, trace ids from the
traceparent or derived from the request id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
import time
from typing import Any

import duckdb
import msgspec
import pytest
from herd import RequestTrace
from herd.trace import AttemptRecord
from herd_plugins.sink_duckdb import DuckDBSink
from herd_plugins.sink_duckdb.schema import insert_traces, migrate
from trace_factory import make_trace

EPOCH = dt.datetime(1970, 1, 1)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
ODD_TEXT = 'quote " backslash \\ newline \n tab \t ctl \x01 é ü ✓ 🦙 \u2028'


def timestamp(seconds: float) -> dt.datetime | None:
    return EPOCH + dt.timedelta(microseconds=int(seconds * 1_000_000)) if seconds > 0 else None


def expected_row(trace: RequestTrace, received_fallback: float | None = None) -> dict[str, Any]:
    """The stored row of a trace, field by field, from the trace alone."""
    row = msgspec.structs.asdict(trace)
    received = trace.received_at or trace.done_at
    row["received_at"] = timestamp(received) if received else received_fallback
    row["first_byte_at"] = timestamp(trace.first_byte_at)
    row["done_at"] = timestamp(trace.done_at)
    for name in ("scores", "rejections", "attempts"):
        row[name] = msgspec.json.encode(getattr(trace, name)).decode()
    if trace.traceparent.startswith("00-") and trace.traceparent.count("-") == 3:
        row["trace_id"] = trace.traceparent.split("-")[1]
    else:
        row["trace_id"] = hashlib.md5(trace.request_id.encode()).hexdigest()
    return row


def stored_rows(con: Any) -> list[dict[str, Any]]:
    cursor = con.execute("SELECT * FROM traces ORDER BY rowid")
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def varied_traces(count: int) -> list[RequestTrace]:
    """Traces that between them use every field, odd text and extreme numbers."""
    now = time.time()
    traces = []
    for i in range(count):
        odd = i % 7 == 3
        received = now - (count - i + 0.123456789)
        traces.append(
            make_trace(
                received_at=received,
                first_byte_at=received + 0.1 if i % 3 != 2 else 0.0,
                done_at=received + i / 1000,
                request_id=f"req-{i}-{ODD_TEXT}" if odd else f"r{i:08x}",
                api=("ollama", "openai", "anthropic")[i % 3],
                endpoint=ODD_TEXT if odd else "chat",
                node=("n1", "n2", "")[i % 3],
                status=("completed", "failed", "rejected")[i % 3],
                http_status=(200, 2**31 - 1, 404)[i % 3],
                error=ODD_TEXT if i % 3 == 1 else "",
                ttft_ms=(0.1, 1e-300, 1.7976931348623157e308, 0.0)[i % 4],
                latency_ms=float(i) + 0.5,
                queue_ms=math.pi * i,
                load_ms=(0.0, 12345.678)[i % 2],
                prompt_tokens=i,
                completion_tokens=(0, 2**31 - 1)[i % 2],
                tokens_per_second=1 / 3,
                retries=i % 3,
                excluded_nodes=["n2", ODD_TEXT] if odd else [],
                tags=[f"user:{i % 5}", "app:bench"] if i % 2 else [],
                notes=[ODD_TEXT] if odd else [],
                client=f"127.0.0.1:{40000 + i}",
                stream=i % 2 == 0,
                traceparent=(TRACEPARENT, "", "not-a-traceparent", "")[i % 4],
                api_key=("", "team-a")[i % 2],
                session=f"s{i % 11}" if i % 2 else "",
                scores={
                    f"n{j}": {"thermal": 1.0 / (j + 1), "queue-depth": 1e20, "tiny": 5e-324}
                    for j in range(i % 4)
                },
                rejections={"n3": ODD_TEXT} if odd else {},
                attempts=[AttemptRecord("n1", now - i, now - i + 0.25, ODD_TEXT * odd, 500)]
                * (i % 3),
            )
        )
    return traces


@pytest.mark.parametrize("count", [1, 7, 5000])  # 5000 spans several DuckDB vectors (2048)
def test_every_column_of_every_trace_is_stored_as_the_trace_holds_it(count: int) -> None:
    traces = varied_traces(count)
    with duckdb.connect() as con:
        migrate(con)
        insert_traces(con, traces)
        rows = stored_rows(con)
    assert len(rows) == count
    for trace, row in zip(traces, rows, strict=True):
        assert row == expected_row(trace)


def test_a_trace_without_times_is_received_when_inserted() -> None:
    no_times = make_trace(received_at=0.0, first_byte_at=0.0, done_at=0.0)
    only_done = make_trace(received_at=0.0, done_at=1_700_000_000.25)
    with duckdb.connect() as con:
        migrate(con)
        before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        insert_traces(con, [no_times, only_done])
        after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        first, second = stored_rows(con)
    assert before - dt.timedelta(seconds=1) <= first["received_at"] <= after
    assert first == expected_row(no_times, received_fallback=first["received_at"])
    assert second["received_at"] == timestamp(1_700_000_000.25)
    assert second == expected_row(only_done)


def test_batches_add_up_in_order() -> None:
    traces = varied_traces(300)
    with duckdb.connect() as con:
        migrate(con)
        for start in range(0, 300, 128):
            insert_traces(con, traces[start : start + 128])
        insert_traces(con, [])
        rows = stored_rows(con)
    assert [r["request_id"] for r in rows] == [t.request_id for t in traces]
    assert rows == [expected_row(t) for t in traces]


def sink_with_a_backlog(traces: list[RequestTrace], batch_size: int) -> DuckDBSink:
    """A sink whose writer starts with every trace already queued: many batches in one go,
    each prepared while DuckDB inserts the one before."""
    sink = DuckDBSink(DuckDBSink.Config(batch_size=batch_size, retention_days=0), "")
    for trace in traces:
        sink.submit(trace)
    asyncio.run(sink.start())
    assert sink.flush_now(timeout=120)
    return sink


def test_a_backlog_of_batches_lands_whole_and_in_order_by_the_flush() -> None:
    traces = varied_traces(203)
    sink = sink_with_a_backlog(traces, batch_size=10)
    try:
        assert (sink.written, sink.failed) == (203, 0)  # counted when flush returned
        with sink.reader() as cursor:
            assert stored_rows(cursor) == [expected_row(t) for t in traces]
    finally:
        asyncio.run(sink.stop())


def test_a_failed_batch_is_counted_and_the_next_ones_still_land() -> None:
    good = [make_trace() for _ in range(4)]
    refused_by_duckdb = make_trace(received_at=-5.0)  # no valid received_at: NOT NULL
    not_encodable = make_trace(tags=[object()])  # fails before DuckDB sees it
    traces = [good[0], good[1], refused_by_duckdb, good[2], not_encodable, good[3]]
    sink = sink_with_a_backlog(traces, batch_size=2)
    try:
        assert (sink.written, sink.failed, sink.dropped) == (2, 4, 4)
        with sink.reader() as cursor:
            assert [r["request_id"] for r in stored_rows(cursor)] == [
                good[0].request_id,
                good[1].request_id,
            ]
        sink.submit(good[3])  # the writer goes on
        assert sink.flush_now(timeout=60)
        assert sink.written == 3
    finally:
        asyncio.run(sink.stop())
