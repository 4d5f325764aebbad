"""The questions the dashboard asks of the trace store, one function each, answered in SQL.

Every function takes a DuckDB cursor and the moment to count back from (``now``, Unix
seconds) and returns plain JSON-ready data. Time buckets and percentiles are computed by
DuckDB (``date_trunc``, ``quantile_cont``); Python only shapes the rows.

Definitions shared by all of them:

- *errors*: requests that ``failed`` on a node; a client's own mistake (``rejected``, a
  4xx) is counted apart as *rejected* and never raises the error rate;
- *traffic*: client requests. Dashboard benchmark runs (tag :data:`BENCH_TAG`) are left
  out unless a question is asked with ``bench=True``; model actions (``kind = 'action'``,
  logged by the dashboard) are never counted;
- *latency* percentiles: over completed requests; *TTFT*: over requests that got a first byte;
- *tokens/s*: the mean of the requests that report a rate;
- *model*: the model a node served, else (rejected requests) the name the client sent;
  model insights leave out requests rejected before any node served them (an unknown
  name is the client's mistake, not a model);
- *cold load*: a request whose model load took at least :data:`COLD_LOAD_MS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from herd import ACTION_KIND

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "BENCH_TAG",
    "COLD_LOAD_MS",
    "apps",
    "models",
    "overview",
    "tags",
    "traffic",
    "trends",
]

COLD_LOAD_MS = 250.0
UNTAGGED = "(untagged)"
NO_NODE = "(none)"
MODEL_KEY = "coalesce(nullif(served_model, ''), model)"
NOW = "make_timestamp($now::BIGINT)"
BENCH_TAG = "source:dashboard-bench"

METRICS = """
    count(request_id) AS requests,
    count(request_id) FILTER (WHERE status = 'failed') AS errors,
    count(request_id) FILTER (WHERE status = 'rejected') AS rejected,
    coalesce(errors / nullif(requests, 0), 0.0) AS error_rate,
    quantile_cont(latency_ms, 0.5) FILTER (WHERE status = 'completed') AS p50_latency_ms,
    quantile_cont(latency_ms, 0.95) FILTER (WHERE status = 'completed') AS p95_latency_ms,
    quantile_cont(ttft_ms, 0.5) FILTER (WHERE first_byte_at IS NOT NULL) AS p50_ttft_ms,
    quantile_cont(ttft_ms, 0.95) FILTER (WHERE first_byte_at IS NOT NULL) AS p95_ttft_ms,
    coalesce(sum(prompt_tokens), 0)::BIGINT AS prompt_tokens,
    coalesce(sum(completion_tokens), 0)::BIGINT AS completion_tokens,
    avg(tokens_per_second) FILTER (WHERE tokens_per_second > 0) AS tokens_per_second
"""
"""Aggregates every summary reports, over whatever rows the query groups."""


def traffic(bench: bool = False) -> str:
    """The SQL condition that keeps the rows the summaries count (see the module docs)."""
    if bench:
        return f"kind <> '{ACTION_KIND}'"
    return f"kind <> '{ACTION_KIND}' AND NOT list_contains(tags, '{BENCH_TAG}')"


def _micros(seconds: float) -> int:
    return int(seconds * 1_000_000)


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def overview(con: duckdb.DuckDBPyConnection, now: float, bench: bool = False) -> dict[str, Any]:
    """Requests, errors, latency and TTFT percentiles and tokens, for the last hour and day,
    the same per node over the last day, and the size of the store."""
    params = {"now": _micros(now)}
    con.execute(
        f"""
        WITH windows(name, since) AS (
            VALUES ('hour', {NOW} - INTERVAL 1 HOUR), ('day', {NOW} - INTERVAL 1 DAY)
        )
        SELECT w.name AS "window", {METRICS}
        FROM windows w
        LEFT JOIN (SELECT * FROM traces WHERE {traffic(bench)}) t
            ON t.received_at > w.since AND t.received_at <= {NOW}
        GROUP BY w.name
        """,
        params,
    )
    windows = {row.pop("window"): row for row in _rows(con)}
    con.execute(
        f"""
        SELECT node, {METRICS}, epoch(max(received_at)) AS last_seen
        FROM traces
        WHERE received_at > {NOW} - INTERVAL 1 DAY AND received_at <= {NOW} AND node <> ''
            AND {traffic(bench)}
        GROUP BY node ORDER BY node
        """,
        params,
    )
    nodes = _rows(con)
    con.execute("SELECT count(*) AS traces, epoch(min(received_at)) AS oldest FROM traces")
    store = _rows(con)[0]
    return {"now": now, "hour": windows["hour"], "day": windows["day"], "nodes": nodes, **store}


def trends(
    con: duckdb.DuckDBPyConnection,
    now: float,
    hours: int = 24,
    by: str | None = None,
    bench: bool = False,
) -> dict[str, Any]:
    """Per-hour series over the last ``hours`` hours (the current hour included), zero-filled.

    Args:
        by: ``model`` or ``node`` for one series each; None for the whole fleet.

    Returns:
        ``{"hours", "by", "series": {key: [{"t": bucket start, "requests": ...}, ...]}}``
    """
    key = {None: "'all'", "model": MODEL_KEY, "node": f"coalesce(nullif(node, ''), '{NO_NODE}')"}
    if by not in key:
        raise ValueError(f"trends by {by!r}: choose model or node")
    span = f"""received_at >= (SELECT min(bucket) FROM buckets)
               AND received_at < date_trunc('hour', {NOW}) + INTERVAL 1 HOUR
               AND {traffic(bench)}"""
    con.execute(
        f"""
        WITH buckets AS (
            SELECT range AS bucket FROM range(
                date_trunc('hour', {NOW}) - to_hours($hours - 1),
                date_trunc('hour', {NOW}) + INTERVAL 1 HOUR,
                INTERVAL 1 HOUR)
        ),
        counted AS (
            SELECT date_trunc('hour', received_at) AS bucket, {key[by]} AS key, {METRICS}
            FROM traces WHERE {span}
            GROUP BY ALL
        ),
        keys AS (
            SELECT DISTINCT key FROM counted
            {"UNION SELECT 'all'" if by is None else ""}
        )
        SELECT k.key, epoch(b.bucket) AS t,
            coalesce(c.requests, 0) AS requests, coalesce(c.errors, 0) AS errors,
            c.p50_latency_ms, c.p95_latency_ms, c.p50_ttft_ms, c.p95_ttft_ms,
            coalesce(c.prompt_tokens, 0) AS prompt_tokens,
            coalesce(c.completion_tokens, 0) AS completion_tokens,
            c.tokens_per_second
        FROM buckets b CROSS JOIN keys k
        LEFT JOIN counted c ON c.bucket = b.bucket AND c.key = k.key
        ORDER BY k.key, t
        """,
        {"now": _micros(now), "hours": hours},
    )
    series: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(con):
        series.setdefault(row.pop("key"), []).append(row)
    return {"hours": hours, "by": by, "series": series}


def models(
    con: duckdb.DuckDBPyConnection, now: float, hours: int = 168, bench: bool = False
) -> list[dict[str, Any]]:
    """Per model over the last ``hours``: usage, latency, TTFT, tokens/s, cold loads, nodes,
    last seen; busiest first."""
    con.execute(
        f"""
        SELECT {MODEL_KEY} AS model, {METRICS},
            count(request_id) FILTER (WHERE load_ms >= $cold) AS cold_loads,
            avg(load_ms) FILTER (WHERE load_ms >= $cold) AS avg_cold_load_ms,
            coalesce(list_sort(list(DISTINCT node) FILTER (WHERE node <> '')), []) AS nodes,
            epoch(max(received_at)) AS last_seen
        FROM traces
        WHERE received_at > {NOW} - to_hours($hours) AND received_at <= {NOW}
            AND NOT (status = 'rejected' AND served_model = '')  -- a name no node serves
            AND {traffic(bench)}
        GROUP BY 1 ORDER BY requests DESC, model
        """,
        {"now": _micros(now), "hours": hours, "cold": COLD_LOAD_MS},
    )
    return _rows(con)


def tags(
    con: duckdb.DuckDBPyConnection, now: float, hours: int = 168, bench: bool = False
) -> list[dict[str, Any]]:
    """Per tag over the last ``hours``: requests, tokens, latency, TTFT, error rate, last seen.

    A request with several tags counts once under each; untagged requests are not listed.
    """
    con.execute(
        f"""
        SELECT tag, {METRICS}, epoch(max(received_at)) AS last_seen
        FROM (
            SELECT unnest(tags) AS tag, * EXCLUDE (tags) FROM traces
            WHERE received_at > {NOW} - to_hours($hours) AND received_at <= {NOW}
                AND {traffic(bench)}
        )
        GROUP BY tag ORDER BY requests DESC, tag
        """,
        {"now": _micros(now), "hours": hours},
    )
    return _rows(con)


def apps(
    con: duckdb.DuckDBPyConnection, now: float, days: int = 7, bench: bool = False
) -> dict[str, Any]:
    """Per app (a tag; untagged requests as ``(untagged)``): a summary over the last ``days``
    days and a zero-filled daily series (UTC days, today included)."""
    params = {"now": _micros(now), "days": days, "untagged": UNTAGGED}
    tagged = f"""
        SELECT unnest(CASE WHEN len(tags) = 0 THEN [$untagged] ELSE tags END) AS app,
            * EXCLUDE (tags)
        FROM traces
        WHERE received_at >= date_trunc('day', {NOW}) - to_days($days - 1)
            AND received_at <= {NOW} AND {traffic(bench)}
    """
    con.execute(
        f"""SELECT app, {METRICS}, epoch(max(received_at)) AS last_seen
            FROM ({tagged}) GROUP BY app ORDER BY requests DESC, app""",
        params,
    )
    summary = _rows(con)
    con.execute(
        f"""
        WITH days AS (
            SELECT range AS day FROM range(
                date_trunc('day', {NOW}) - to_days($days - 1),
                date_trunc('day', {NOW}) + INTERVAL 1 DAY,
                INTERVAL 1 DAY)
        ),
        counted AS (
            SELECT app, date_trunc('day', received_at) AS day, {METRICS}
            FROM ({tagged}) GROUP BY ALL
        )
        SELECT a.app, epoch(d.day) AS t,
            coalesce(c.requests, 0) AS requests, coalesce(c.errors, 0) AS errors,
            coalesce(c.prompt_tokens, 0) AS prompt_tokens,
            coalesce(c.completion_tokens, 0) AS completion_tokens,
            c.p50_latency_ms, c.p50_ttft_ms
        FROM days d CROSS JOIN (SELECT DISTINCT app FROM counted) a
        LEFT JOIN counted c ON c.app = a.app AND c.day = d.day
        ORDER BY a.app, t
        """,
        params,
    )
    daily: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(con):
        daily.setdefault(row.pop("app"), []).append(row)
    return {
        "days": days,
        "apps": [{**entry, "daily": daily.get(entry["app"], [])} for entry in summary],
    }
