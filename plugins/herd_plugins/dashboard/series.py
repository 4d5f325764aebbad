"""Time series for the Trends tab over one window: the last hour, day or week, or any range.

The same aggregates as :mod:`herd_plugins.dashboard.analytics` (its ``METRICS``), in
zero-filled buckets sized so a window has at most 180 of them (a week: by the hour), plus
the totals over the very same window, so every number of a strip speaks of one period.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from herd_plugins.dashboard.analytics import METRICS, MODEL_KEY, NO_NODE, traffic

if TYPE_CHECKING:
    import duckdb

__all__ = ["STEPS", "WINDOWS", "bucket_step", "series"]

#: named window -> seconds it spans
WINDOWS: dict[str, int] = {"hour": 3600, "day": 86400, "week": 7 * 86400}
#: bucket sizes a window may use, in seconds (one minute .. one day)
STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
MAX_BUCKETS = 180
MAX_SPAN = 90 * 86400
_KEYS = {None: "'all'", "model": MODEL_KEY, "node": f"coalesce(nullif(node, ''), '{NO_NODE}')"}


def bucket_step(span: float) -> int:
    """The smallest bucket size that cuts ``span`` seconds into at most 180 buckets."""
    for step in STEPS:
        if span / step <= MAX_BUCKETS:
            return step
    return STEPS[-1]


def series(
    con: duckdb.DuckDBPyConnection,
    now: float,
    window: str = "hour",
    by: str | None = None,
    *,
    since: float | None = None,
    until: float | None = None,
    bench: bool = False,
) -> dict[str, Any]:
    """Zero-filled series per key (``all``, each model or each node), oldest bucket first.

    Args:
        window: ``hour``, ``day`` or ``week`` back from ``now``; ignored when ``since`` and
            ``until`` (Unix seconds) give a custom range.
        bench: Count the dashboard's benchmark traffic too.

    Returns:
        ``{"window", "since", "until", "step", "by", "totals": {...}, "series": {key:
        [{"t", "requests", "errors", "rejected", "p50_latency_ms", "p95_latency_ms",
        "p50_ttft_ms", "p95_ttft_ms", "tokens_per_second", "completion_tokens"}, ...]}}``
    """
    if by not in _KEYS:
        raise ValueError(f"by {by!r}: choose model or node")
    if since is not None and until is not None:
        if not 0 < until - since <= MAX_SPAN:
            raise ValueError("a custom range must be positive and at most 90 days long")
        window, end = "custom", until
        span = until - since
    else:
        if window not in WINDOWS:
            raise ValueError(f"window {window!r}: choose hour, day or week")
        span, end = WINDOWS[window], now
    step = bucket_step(span)
    if window == "custom":  # every bucket that holds a moment of the range
        start = math.floor(since / step) * step
        count = max(1, math.ceil(end / step) - math.floor(since / step))
    else:  # the current bucket and the ones before it
        count = max(1, math.ceil(span / step))
        start = (math.floor(end / step) - count + 1) * step
    params = {
        "start": start,
        "step": step,
        "count": count,
        "start_us": start * 1_000_000,
        "end_us": (start + step * count) * 1_000_000,
    }
    rows = f"""traces WHERE received_at >= make_timestamp($start_us::BIGINT)
        AND received_at < make_timestamp($end_us::BIGINT) AND {traffic(bench)}"""
    con.execute(
        f"""
        WITH counted AS (
            SELECT floor((epoch(received_at) - $start) / $step)::BIGINT AS bucket,
                {_KEYS[by]} AS key, {METRICS}
            FROM {rows}
            GROUP BY ALL
        ),
        keys AS (SELECT DISTINCT key FROM counted {"UNION SELECT 'all'" if by is None else ""})
        SELECT k.key, $start + b.range * $step AS t,
            coalesce(c.requests, 0) AS requests, coalesce(c.errors, 0) AS errors,
            coalesce(c.rejected, 0) AS rejected,
            c.p50_latency_ms, c.p95_latency_ms, c.p50_ttft_ms, c.p95_ttft_ms,
            c.tokens_per_second, coalesce(c.completion_tokens, 0) AS completion_tokens
        FROM range(0, $count) b CROSS JOIN keys k
        LEFT JOIN counted c ON c.bucket = b.range AND c.key = k.key
        ORDER BY k.key, t
        """,
        params,
    )
    names = [column[0] for column in con.description or ()]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in con.fetchall():
        entry = dict(zip(names, row, strict=True))
        out.setdefault(entry.pop("key"), []).append(entry)
    span_only = {"start_us": params["start_us"], "end_us": params["end_us"]}
    con.execute(f"SELECT {METRICS} FROM {rows}", span_only)
    names = [column[0] for column in con.description or ()]
    totals = dict(zip(names, con.fetchone() or (), strict=False))
    return {
        "window": window,
        "since": start,
        "until": start + step * count,
        "step": step,
        "by": by,
        "totals": totals,
        "series": out,
    }
