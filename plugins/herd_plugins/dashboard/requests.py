"""The Requests tab's questions: the trace log, newest first, paged by keyset, and one trace.

Keyset paging: a page ends with a cursor (the last row's ``received_at`` in microseconds
and its ``request_id``), and the next page asks for rows strictly older than it. Unlike
``OFFSET`` this costs the same on page one and page one thousand, and rows arriving
meanwhile never shift a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import duckdb

__all__ = ["TraceFilter", "facets", "parse_cursor", "trace", "trace_page"]

_JSON_COLUMNS = ("scores", "rejections", "attempts")
_decode = msgspec.json.decode
LIST_COLUMNS = """request_id, epoch_us(received_at) AS received_us,
    epoch(received_at) AS received_at, api, endpoint, kind, model, served_model, node,
    status, http_status, error, ttft_ms, latency_ms, queue_ms, prompt_tokens,
    completion_tokens, tokens_per_second, retries, tags, api_key, stream"""


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """What the log is filtered by; None (or empty) means any."""

    status: str | None = None
    model: str | None = None
    node: str | None = None
    tag: str | None = None
    api_key: str | None = None
    kind: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        """The SQL condition and its parameters (only the filters that are set)."""
        parts: list[str] = []
        params: dict[str, Any] = {}
        if self.status:
            parts.append("status = $status")
            params["status"] = self.status
        if self.model:
            parts.append("(served_model = $model OR model = $model)")
            params["model"] = self.model
        if self.node:
            parts.append("node = $node")
            params["node"] = self.node
        if self.tag:
            parts.append("list_contains(tags, $tag)")
            params["tag"] = self.tag
        if self.api_key:
            parts.append("api_key = $api_key")
            params["api_key"] = self.api_key
        if self.kind:
            parts.append("kind = $kind")
            params["kind"] = self.kind
        if self.since is not None:
            parts.append("received_at >= make_timestamp($since::BIGINT)")
            params["since"] = int(self.since * 1_000_000)
        if self.until is not None:
            parts.append("received_at < make_timestamp($until::BIGINT)")
            params["until"] = int(self.until * 1_000_000)
        return (" AND ".join(parts) or "true"), params


def parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    """``"<micros>:<request id>"`` as a tuple; ValueError when it is not one."""
    if not cursor:
        return None
    micros, sep, request_id = cursor.partition(":")
    if not sep or not micros.isdigit() or not request_id or len(request_id) > 200:
        raise ValueError("cursor: expected <microseconds>:<request id> from a previous page")
    return int(micros), request_id


def trace_page(
    con: duckdb.DuckDBPyConnection,
    where: TraceFilter,
    *,
    limit: int = 50,
    cursor: tuple[int, str] | None = None,
    count: bool = True,
) -> dict[str, Any]:
    """One page of the log, newest first, and the cursor of the next (None on the last).

    ``total`` counts every match of the filter (all pages) when ``count`` is set.
    """
    condition, params = where.where()
    page = condition
    if cursor is not None:
        page += """ AND (received_at < make_timestamp($c_us::BIGINT)
            OR (received_at = make_timestamp($c_us::BIGINT) AND request_id > $c_id))"""
        params = {**params, "c_us": cursor[0], "c_id": cursor[1]}
    con.execute(
        f"""SELECT {LIST_COLUMNS} FROM traces WHERE {page}
            ORDER BY traces.received_at DESC, request_id LIMIT $limit""",
        {**params, "limit": limit + 1},
    )
    names = [column[0] for column in con.description or ()]
    rows = [dict(zip(names, row, strict=True)) for row in con.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = f"{rows[-1]['received_us']}:{rows[-1]['request_id']}" if more else None
    total = None
    if count:
        plain = {k: v for k, v in params.items() if not k.startswith("c_")}
        row = con.execute(f"SELECT count(*) FROM traces WHERE {condition}", plain).fetchone()
        total = int(row[0]) if row else 0
    return {"traces": rows, "next": next_cursor, "total": total, "limit": limit}


def trace(con: duckdb.DuckDBPyConnection, request_id: str) -> dict[str, Any] | None:
    """Every column of one trace (JSON columns decoded), or None."""
    con.execute(
        """SELECT * REPLACE (
            epoch(received_at) AS received_at,
            epoch(first_byte_at) AS first_byte_at,
            epoch(done_at) AS done_at,
            scores::VARCHAR AS scores,
            rejections::VARCHAR AS rejections,
            attempts::VARCHAR AS attempts)
        FROM traces WHERE request_id = $id LIMIT 1""",
        {"id": request_id},
    )
    names = [column[0] for column in con.description or ()]
    row = con.fetchone()
    if row is None:
        return None
    entry = dict(zip(names, row, strict=True))
    for column in _JSON_COLUMNS:
        entry[column] = _decode(entry[column] or "null")
    return entry


def facets(con: duckdb.DuckDBPyConnection, now: float, days: int = 7) -> dict[str, list[str]]:
    """The values the filters offer: what the last ``days`` days of traces hold."""
    since = {"since": int((now - days * 86400) * 1_000_000)}
    recent = "FROM traces WHERE received_at >= make_timestamp($since::BIGINT)"
    out: dict[str, list[str]] = {}
    for name, expression in (
        ("status", "status"),
        ("model", "coalesce(nullif(served_model, ''), model)"),
        ("node", "node"),
        ("api_key", "api_key"),
        ("kind", "kind"),
    ):
        con.execute(
            f"SELECT DISTINCT {expression} AS v {recent} AND {expression} <> '' "
            "ORDER BY v LIMIT 200",
            since,
        )
        out[name] = [str(row[0]) for row in con.fetchall()]
    con.execute(
        f"SELECT tag FROM (SELECT unnest(tags) AS tag {recent}) GROUP BY tag "
        "ORDER BY count(*) DESC, tag LIMIT 200",
        since,
    )
    out["tag"] = [str(row[0]) for row in con.fetchall()]
    return out
