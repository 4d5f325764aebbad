"""The DuckDB trace insert as it was before the columnar one, kept to measure against.

bench_traces runs it beside the product's insert in the same process and prints both
rates: the VM's speed swings up to 2x from one hour to the next, a same-run ratio does
not. Frozen copies of ``insert_traces`` at commit 03561e0 (one JSON document of row
objects, ``from_json`` on the parameter, ``unnest``) and of the queue's ``offer``, with
that commit's sink settings; not product code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import msgspec
from herd import RequestTrace
from herd_plugins.batching import BatchWorker
from herd_plugins.sink_duckdb import DuckDBSink
from herd_plugins.sink_otel.trace_context import trace_id_of

__all__ = ["BASELINE_OPTIONS", "BaselineSink", "baseline_insert_traces"]

# The sink's settings before the change: batch size and DuckDB's own checkpoint threshold.
BASELINE_OPTIONS: dict[str, Any] = {"batch_size": 2000, "checkpoint_threshold": "16MB"}


def _micros(seconds: float) -> int | None:
    return int(seconds * 1_000_000) if seconds > 0 else None


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


_COLUMNS: tuple[tuple[str, str, Callable[[RequestTrace], Any]], ...] = (
    ("request_id", "VARCHAR", lambda t: t.request_id),
    ("received_at", "TIMESTAMP", lambda t: _micros(t.received_at or t.done_at or time.time())),
    ("api", "VARCHAR", lambda t: t.api),
    ("endpoint", "VARCHAR", lambda t: t.endpoint),
    ("kind", "VARCHAR", lambda t: t.kind),
    ("model", "VARCHAR", lambda t: t.model),
    ("served_model", "VARCHAR", lambda t: t.served_model),
    ("node", "VARCHAR", lambda t: t.node),
    ("status", "VARCHAR", lambda t: t.status),
    ("http_status", "INTEGER", lambda t: t.http_status),
    ("error", "VARCHAR", lambda t: t.error),
    ("first_byte_at", "TIMESTAMP", lambda t: _micros(t.first_byte_at)),
    ("done_at", "TIMESTAMP", lambda t: _micros(t.done_at)),
    ("ttft_ms", "DOUBLE", lambda t: t.ttft_ms),
    ("latency_ms", "DOUBLE", lambda t: t.latency_ms),
    ("queue_ms", "DOUBLE", lambda t: t.queue_ms),
    ("prompt_tokens", "INTEGER", lambda t: t.prompt_tokens),
    ("completion_tokens", "INTEGER", lambda t: t.completion_tokens),
    ("tokens_per_second", "DOUBLE", lambda t: t.tokens_per_second),
    ("retries", "INTEGER", lambda t: t.retries),
    ("excluded_nodes", "VARCHAR[]", lambda t: t.excluded_nodes),
    ("tags", "VARCHAR[]", lambda t: t.tags),
    ("client", "VARCHAR", lambda t: t.client),
    ("stream", "BOOLEAN", lambda t: t.stream),
    ("trace_id", "VARCHAR", lambda t: trace_id_of(t.request_id, t.traceparent)),
    ("traceparent", "VARCHAR", lambda t: t.traceparent),
    ("load_ms", "DOUBLE", lambda t: t.load_ms),
    ("api_key", "VARCHAR", lambda t: t.api_key),
    ("scores", "JSON", lambda t: _json(t.scores)),
    ("rejections", "JSON", lambda t: _json(t.rejections)),
    ("attempts", "JSON", lambda t: _json(t.attempts)),
    ("session", "VARCHAR", lambda t: t.session),
    ("notes", "VARCHAR[]", lambda t: t.notes),
)


def _insert_sql() -> str:
    names = ", ".join(name for name, _, _ in _COLUMNS)
    values = []
    for name, sql_type, _ in _COLUMNS:
        if sql_type == "TIMESTAMP":
            values.append(f"make_timestamp(r.{name})")
        elif sql_type == "JSON":
            values.append(f"r.{name}::JSON")
        else:
            values.append(f"r.{name}")
    return (
        f"INSERT INTO traces ({names}) SELECT {', '.join(values)} "
        "FROM (SELECT unnest(from_json($1, $2)) AS r)"
    )


_INSERT_SQL = _insert_sql()
_TYPES = {"TIMESTAMP": "BIGINT", "JSON": "VARCHAR"}
_ROW_SHAPE = msgspec.json.encode(
    [{name: _TYPES.get(sql_type, sql_type) for name, sql_type, _ in _COLUMNS}]
).decode()
_encode_rows = msgspec.json.Encoder().encode


def baseline_insert_traces(con: duckdb.DuckDBPyConnection, traces: Sequence[RequestTrace]) -> None:
    """The previous insert: a dict per trace, one JSON array of them, one statement."""
    if not traces:
        return
    rows = [{name: value(t) for name, _, value in _COLUMNS} for t in traces]
    con.execute(_INSERT_SQL, [_encode_rows(rows).decode(), _ROW_SHAPE])


class _BaselineWorker(BatchWorker):
    """The queue's ``offer`` as it was: ``Event.set()`` on every item once a batch is full."""

    def offer(self, item: Any) -> bool:
        if self._closed or self._queue.qsize() >= self.queue_size:
            self.rejected += 1
            return False
        self._queue.put(item)
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return True


class BaselineSink(DuckDBSink):
    """The product's sink with the baseline insert (synchronous, on the writer thread)
    and the baseline ``offer``."""

    def __init__(self, config: Any = None, data_dir: str = "") -> None:
        super().__init__(config, data_dir)
        self._worker.__class__ = _BaselineWorker

    def _write(self, batch: list[RequestTrace]) -> None:
        assert self._writer is not None
        baseline_insert_traces(self._writer, batch)
        self.written += len(batch)
