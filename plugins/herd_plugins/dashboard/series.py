"""Time series for the Trends tab: the last hour by minute, day by 15 minutes, week by hour.

The same aggregates as :mod:`herd_plugins.dashboard.analytics` (its ``METRICS``), bucketed finer
than its hourly ``trends`` so the last hour is a curve rather than a point.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from herd_plugins.dashboard.analytics import METRICS, MODEL_KEY, NO_NODE

if TYPE_CHECKING:
    import duckdb

__all__ = ["WINDOWS", "series"]

#: window -> (bucket seconds, buckets)
WINDOWS: dict[str, tuple[int, int]] = {"hour": (60, 60), "day": (900, 96), "week": (3600, 168)}
_KEYS = {None: "'all'", "model": MODEL_KEY, "node": f"coalesce(nullif(node, ''), '{NO_NODE}')"}


def series(
    con: duckdb.DuckDBPyConnection, now: float, window: str = "hour", by: str | None = None
) -> dict[str, Any]:
    """Zero-filled series per key (``all``, each model or each node), oldest bucket first.

    Returns:
        ``{"window", "step", "by", "series": {key: [{"t", "requests", "errors",
        "p50_latency_ms", "p95_latency_ms", "p50_ttft_ms", "p95_ttft_ms",
        "tokens_per_second", "completion_tokens"}, ...]}}``
    """
    if window not in WINDOWS or by not in _KEYS:
        raise ValueError(f"window {window!r} / by {by!r}: choose hour, day, week / model, node")
    step, count = WINDOWS[window]
    start = (math.floor(now / step) - count + 1) * step
    con.execute(
        f"""
        WITH counted AS (
            SELECT floor((epoch(received_at) - $start) / $step)::BIGINT AS bucket,
                {_KEYS[by]} AS key, {METRICS}
            FROM traces
            WHERE received_at >= make_timestamp($start_us::BIGINT)
                AND received_at < make_timestamp($end_us::BIGINT)
            GROUP BY ALL
        ),
        keys AS (SELECT DISTINCT key FROM counted {"UNION SELECT 'all'" if by is None else ""})
        SELECT k.key, $start + b.range * $step AS t,
            coalesce(c.requests, 0) AS requests, coalesce(c.errors, 0) AS errors,
            c.p50_latency_ms, c.p95_latency_ms, c.p50_ttft_ms, c.p95_ttft_ms,
            c.tokens_per_second, coalesce(c.completion_tokens, 0) AS completion_tokens
        FROM range(0, $count) b CROSS JOIN keys k
        LEFT JOIN counted c ON c.bucket = b.range AND c.key = k.key
        ORDER BY k.key, t
        """,
        {
            "start": start,
            "step": step,
            "count": count,
            "start_us": start * 1_000_000,
            "end_us": (start + step * count) * 1_000_000,
        },
    )
    names = [column[0] for column in con.description or ()]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in con.fetchall():
        entry = dict(zip(names, row, strict=True))
        out.setdefault(entry.pop("key"), []).append(entry)
    return {"window": window, "step": step, "by": by, "series": out}
