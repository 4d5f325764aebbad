"""The DuckDB trace store's schema: numbered migrations and the batch insert.

Each migration is frozen once released: a new column or table is a new numbered
migration, so a file written by any earlier herd is upgraded in place on start.
Times are ``TIMESTAMP`` in UTC (no zone); durations are milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from herd_plugins.sink_otel.trace_context import trace_id_of

if TYPE_CHECKING:
    import duckdb
    from herd import RequestTrace

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration", "insert_traces", "migrate", "version_of"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: its number, what it is for, and its statements."""

    version: int
    summary: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "request traces",
        (
            """
            CREATE TABLE traces (
                request_id        VARCHAR   NOT NULL,
                received_at       TIMESTAMP NOT NULL,
                api               VARCHAR   NOT NULL,
                endpoint          VARCHAR   NOT NULL,
                kind              VARCHAR   NOT NULL,
                model             VARCHAR   NOT NULL,
                served_model      VARCHAR   NOT NULL DEFAULT '',
                node              VARCHAR   NOT NULL DEFAULT '',
                status            VARCHAR   NOT NULL,
                http_status       INTEGER   NOT NULL DEFAULT 0,
                error             VARCHAR   NOT NULL DEFAULT '',
                first_byte_at     TIMESTAMP,
                done_at           TIMESTAMP,
                ttft_ms           DOUBLE    NOT NULL DEFAULT 0,
                latency_ms        DOUBLE    NOT NULL DEFAULT 0,
                queue_ms          DOUBLE    NOT NULL DEFAULT 0,
                prompt_tokens     INTEGER   NOT NULL DEFAULT 0,
                completion_tokens INTEGER   NOT NULL DEFAULT 0,
                tokens_per_second DOUBLE    NOT NULL DEFAULT 0,
                retries           INTEGER   NOT NULL DEFAULT 0,
                excluded_nodes    VARCHAR[] NOT NULL DEFAULT [],
                tags              VARCHAR[] NOT NULL DEFAULT [],
                client            VARCHAR   NOT NULL DEFAULT '',
                stream            BOOLEAN   NOT NULL DEFAULT false
            )
            """,
        ),
    ),
    Migration(
        2,
        "routing decision, OTel trace id, model load time, API key name",
        (
            "ALTER TABLE traces ADD COLUMN trace_id VARCHAR DEFAULT ''",
            "ALTER TABLE traces ADD COLUMN traceparent VARCHAR DEFAULT ''",
            "ALTER TABLE traces ADD COLUMN load_ms DOUBLE DEFAULT 0",
            "ALTER TABLE traces ADD COLUMN api_key VARCHAR DEFAULT ''",
            "ALTER TABLE traces ADD COLUMN scores JSON DEFAULT '{}'",
            "ALTER TABLE traces ADD COLUMN rejections JSON DEFAULT '{}'",
            "ALTER TABLE traces ADD COLUMN attempts JSON DEFAULT '[]'",
            # Rows from v1 had no traceparent: their trace id is the derived one.
            "UPDATE traces SET trace_id = md5(request_id) WHERE trace_id = ''",
        ),
    ),
    Migration(
        3,
        "conversation key, routing notes, and the dashboard's benchmark runs",
        (
            "ALTER TABLE traces ADD COLUMN session VARCHAR DEFAULT ''",
            "ALTER TABLE traces ADD COLUMN notes VARCHAR[] DEFAULT []",
            """
            CREATE TABLE IF NOT EXISTS benchmark_runs (
                id VARCHAR PRIMARY KEY, started_at DOUBLE, finished_at DOUBLE,
                model VARCHAR, duration_s DOUBLE, concurrency INTEGER, num_predict INTEGER,
                status VARCHAR, error VARCHAR, requests INTEGER, errors INTEGER,
                completion_tokens BIGINT, throughput_tps DOUBLE, tokens_per_second DOUBLE,
                p50_latency_ms DOUBLE, p95_latency_ms DOUBLE, p99_latency_ms DOUBLE,
                p50_ttft_ms DOUBLE, p95_ttft_ms DOUBLE, nodes VARCHAR[]
            )
            """,
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS herd_schema (
    version    INTEGER   NOT NULL,
    applied_at TIMESTAMP NOT NULL,
    summary    VARCHAR   NOT NULL
)
"""


def version_of(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version of an open database (0 when it has no herd tables yet)."""
    con.execute(_VERSION_TABLE)
    row = con.execute("SELECT max(version) FROM herd_schema").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection, target: int | None = None) -> int:
    """Apply the migrations the database lacks, each in its own transaction.

    Args:
        con: An open read-write connection.
        target: Stop at this version (tests build old files with it); default the latest.

    Returns:
        The version the database is at now.

    Raises:
        RuntimeError: the file was written by a newer herd (its version is unknown here).
    """
    target = LATEST_VERSION if target is None else target
    current = version_of(con)
    if current > LATEST_VERSION:
        raise RuntimeError(
            f"trace store schema v{current} is newer than this herd understands "
            f"(v{LATEST_VERSION}); upgrade herd or move the file aside"
        )
    for migration in MIGRATIONS:
        if current < migration.version <= target:
            con.execute("BEGIN TRANSACTION")
            try:
                for statement in migration.statements:
                    con.execute(statement)
                con.execute(
                    "INSERT INTO herd_schema VALUES (?, make_timestamp(?::BIGINT), ?)",
                    [migration.version, _micros(time.time()), migration.summary],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            current = migration.version
    return current


def _micros(seconds: float) -> int | None:
    return int(seconds * 1_000_000) if seconds > 0 else None


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


# (column, SQL cast of the unnested parameter, value of one trace).
Column = tuple[str, str, Callable[["RequestTrace"], Any]]
COLUMNS: tuple[Column, ...] = (
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
    """One statement for a whole batch: the rows arrive as one JSON array, which DuckDB
    parses in its vectorised reader (``from_json`` into a list of structs, unnested)."""
    names = ", ".join(name for name, _, _ in COLUMNS)
    values = []
    for name, sql_type, _ in COLUMNS:
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


def _row_shape() -> str:
    """The ``from_json`` structure of one row: timestamps as microseconds, JSON as text."""
    types = {"TIMESTAMP": "BIGINT", "JSON": "VARCHAR"}
    shape = {name: types.get(sql_type, sql_type) for name, sql_type, _ in COLUMNS}
    return msgspec.json.encode([shape]).decode()


INSERT_SQL = _insert_sql()
ROW_SHAPE = _row_shape()
_encode_rows = msgspec.json.Encoder().encode


def insert_traces(con: duckdb.DuckDBPyConnection, traces: Sequence[RequestTrace]) -> None:
    """Insert a batch in one statement, its rows encoded as one JSON document.

    A row-at-a-time ``executemany`` manages about a thousand rows a second; one list
    parameter per column zipped by ``unnest`` two orders of magnitude more; one JSON
    document (msgspec encodes it in C, DuckDB parses it vectorised) a quarter more again:
    handing DuckDB thirty Python lists of Python objects was the cost.
    """
    if not traces:
        return
    rows = [{name: value(t) for name, _, value in COLUMNS} for t in traces]
    con.execute(INSERT_SQL, [_encode_rows(rows).decode(), ROW_SHAPE])
