"""The DuckDB trace store's schema: numbered migrations and the batch insert.

Each migration is frozen once released: a new column or table is a new numbered
migration, so a file written by any earlier herd is upgraded in place on start.
Times are ``TIMESTAMP`` in UTC (no zone); durations are milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgspec

from herd_plugins.sink_otel.trace_context import trace_id_of

if TYPE_CHECKING:
    import duckdb
    from herd import RequestTrace

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "batch_document",
    "insert_document",
    "insert_traces",
    "migrate",
    "version_of",
]


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


# Every column in table order, with its type in the batch document (timestamps travel as
# microseconds, JSON as text). The SQL below and the document's shape are built from it.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "VARCHAR"),
    ("received_at", "TIMESTAMP"),
    ("api", "VARCHAR"),
    ("endpoint", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("model", "VARCHAR"),
    ("served_model", "VARCHAR"),
    ("node", "VARCHAR"),
    ("status", "VARCHAR"),
    ("http_status", "INTEGER"),
    ("error", "VARCHAR"),
    ("first_byte_at", "TIMESTAMP"),
    ("done_at", "TIMESTAMP"),
    ("ttft_ms", "DOUBLE"),
    ("latency_ms", "DOUBLE"),
    ("queue_ms", "DOUBLE"),
    ("prompt_tokens", "INTEGER"),
    ("completion_tokens", "INTEGER"),
    ("tokens_per_second", "DOUBLE"),
    ("retries", "INTEGER"),
    ("excluded_nodes", "VARCHAR[]"),
    ("tags", "VARCHAR[]"),
    ("client", "VARCHAR"),
    ("stream", "BOOLEAN"),
    ("trace_id", "VARCHAR"),
    ("traceparent", "VARCHAR"),
    ("load_ms", "DOUBLE"),
    ("api_key", "VARCHAR"),
    ("scores", "JSON"),
    ("rejections", "JSON"),
    ("attempts", "JSON"),
    ("session", "VARCHAR"),
    ("notes", "VARCHAR[]"),
)

# trace_id arrives empty for a trace without traceparent; DuckDB's md5 derives it (the
# value derived_trace_id gives, as migration 2 relies on too), cheaper than hashlib.
_DERIVED_TRACE_ID = "CASE WHEN trace_id = '' THEN md5(request_id) ELSE trace_id END"


def _insert_sql() -> str:
    """One statement for a whole batch, its traces as one JSON document of columns.

    ``from_json`` reads the document into a struct of lists, one list per column, and
    ``unnest`` zips the lists back into rows. The document comes through a subquery
    column, not straight from the parameter: a function of a parameter alone is folded
    into a constant when the statement is bound, and DuckDB builds such a constant as
    one boxed value per element, several times slower than the vectorised path.
    """
    names = [name for name, _ in COLUMNS]
    values = []
    for name, sql_type in COLUMNS:
        if sql_type == "TIMESTAMP":
            values.append(f"make_timestamp({name})")
        elif sql_type == "JSON":
            values.append(f"{name}::JSON")
        elif name == "trace_id":
            values.append(_DERIVED_TRACE_ID)
        else:
            values.append(name)
    unnested = ", ".join(f"unnest(c.{name}) AS {name}" for name in names)
    return (
        f"INSERT INTO traces ({', '.join(names)}) SELECT {', '.join(values)} "
        f"FROM (SELECT {unnested} FROM (SELECT from_json(doc, $2) AS c FROM (SELECT $1 AS doc)))"
    )


def _document_shape() -> str:
    """The ``from_json`` structure of a batch: a list per column."""
    types = {"TIMESTAMP": "BIGINT", "JSON": "VARCHAR"}
    return msgspec.json.encode({name: [types.get(t, t)] for name, t in COLUMNS}).decode()


INSERT_SQL = _insert_sql()
DOCUMENT_SHAPE = _document_shape()
# Columns stored as the trace holds them, each read with a C-level getter.
_AS_IS = tuple(
    (name, attrgetter(name))
    for name, sql_type in COLUMNS
    if sql_type not in ("TIMESTAMP", "JSON") and name != "trace_id"
)
_JSON_TEXT = tuple((name, attrgetter(name)) for name, t in COLUMNS if t == "JSON")
_encode = msgspec.json.Encoder().encode
_decode_utf8 = bytes.decode
# Traces per slice: each C call (a column of a slice, a column's encoding) holds the GIL
# throughout. Measured with 10,000 traces, the event loop waited 32 ms at worst for the
# previous insert's one big encode, 8 ms for the sliced one (5 ms is Python's own
# switch interval).
SLICE = 1024


def _batch_columns(traces: Sequence[RequestTrace]) -> dict[str, list[Any]]:
    """The batch as one list per column, built with ``map`` over C getters, not per trace."""
    columns: dict[str, list[Any]] = {name: [] for name, _ in COLUMNS}
    now = time.time()  # one clock read per batch for traces that carry no time at all
    for start in range(0, len(traces), SLICE):
        part = traces[start : start + SLICE]
        for name, get in _AS_IS:
            columns[name] += map(get, part)
        columns["received_at"] += [_micros(t.received_at or t.done_at or now) for t in part]
        columns["first_byte_at"] += [_micros(t.first_byte_at) for t in part]
        columns["done_at"] += [_micros(t.done_at) for t in part]
        columns["trace_id"] += [
            trace_id_of(t.request_id, t.traceparent) if t.traceparent else "" for t in part
        ]
        for name, get in _JSON_TEXT:  # as msgspec writes them: the stored text stays the same
            columns[name] += map(_decode_utf8, map(_encode, map(get, part)))
    return columns


# '{"request_id":', ',"received_at":', ...: what precedes each column in the document.
_KEYS = tuple(b'%s"%s":' % (b"," if i else b"{", n.encode()) for i, (n, _) in enumerate(COLUMNS))


def _document(columns: dict[str, list[Any]]) -> str:
    """``{"column": [values], ...}``, each column encoded on its own (see ``SLICE``) and
    the pieces joined once (the document is megabytes: every copy shows)."""
    parts: list[bytes] = []
    for key, (name, _) in zip(_KEYS, COLUMNS, strict=True):
        parts += (key, _encode(columns[name]))
    parts.append(b"}")
    return b"".join(parts).decode()


def batch_document(traces: Sequence[RequestTrace]) -> str:
    """The JSON document of a batch that :func:`insert_document` inserts (Python's part)."""
    return _document(_batch_columns(traces))


def insert_document(con: duckdb.DuckDBPyConnection, document: str) -> None:
    """Insert the traces of a :func:`batch_document` in one statement (DuckDB's part,
    which runs without the GIL)."""
    con.execute(INSERT_SQL, [document, DOCUMENT_SHAPE])


def insert_traces(con: duckdb.DuckDBPyConnection, traces: Sequence[RequestTrace]) -> None:
    """Insert a batch in one statement, its traces encoded as one JSON document of columns.

    Measured on 2 cores (benchmarks/bench_traces.py): a row-at-a-time ``executemany``
    manages about a thousand rows a second; thirty Python list parameters (one per
    column) are slow to convert; one JSON array of row objects cost a dict per trace in
    Python and a bind-time constant in DuckDB (see ``_insert_sql``). A document of
    columns is built by C loops (getters, msgspec) and parsed vectorised.
    """
    if traces:
        insert_document(con, batch_document(traces))
