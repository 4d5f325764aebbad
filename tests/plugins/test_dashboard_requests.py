"""The Requests tab's log: keyset pages, filters and one whole trace, in SQL and over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from herd_plugins.dashboard.requests import TraceFilter, parse_cursor, trace, trace_page
from herd_plugins.sink_duckdb import DuckDBSink
from trace_factory import make_trace

NOW = 1_750_000_000.0


def _traces() -> list[Any]:
    out = []
    for i in range(25):
        out.append(
            make_trace(
                now=NOW,
                ago=60 * i,
                request_id=f"r{i:03d}",
                node="n1" if i % 2 else "n2",
                model="a:1b" if i % 3 else "b:2b",
                served_model="a:1b" if i % 3 else "b:2b",
                status="failed" if i % 5 == 0 else "completed",
                tags=["app:x"] if i < 10 else ["app:y"],
                api_key="team" if i % 4 == 0 else "",
                kind="embed" if i == 7 else "text",
                notes=["pinned num_ctx"] if i == 3 else [],
            )
        )
    # two at the very same microsecond: the cursor must still split them right
    out.append(make_trace(now=NOW, ago=60 * 30, request_id="same-b"))
    out.append(make_trace(now=NOW, ago=60 * 30, request_id="same-a"))
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    sink = DuckDBSink(DuckDBSink.Config(retention_days=0), str(tmp_path))
    asyncio.run(sink.start())
    for item in _traces():
        sink.submit(item)
    asyncio.run(sink.flush())
    with sink.reader() as cursor:
        yield cursor
    asyncio.run(sink.stop())


def _all_pages(store: Any, where: TraceFilter, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = trace_page(store, where, limit=limit, cursor=cursor)
        seen += [row["request_id"] for row in page["traces"]]
        if page["next"] is None:
            return seen
        cursor = parse_cursor(page["next"])


def test_keyset_pages_cover_every_trace_once_newest_first(store: Any) -> None:
    first = trace_page(store, TraceFilter(), limit=4)
    assert [r["request_id"] for r in first["traces"]] == ["r000", "r001", "r002", "r003"]
    assert first["total"] == 27 and first["next"].endswith(":r003")
    ids = _all_pages(store, TraceFilter(), limit=4)
    assert len(ids) == len(set(ids)) == 27
    assert ids[-2:] == ["same-a", "same-b"]  # equal times: by request id
    assert _all_pages(store, TraceFilter(), limit=500) == ids


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (TraceFilter(status="failed"), 5),
        (TraceFilter(model="b:2b"), 9),
        (TraceFilter(node="n1"), 14),  # odd ones and the two same-time ones
        (TraceFilter(tag="app:x"), 10),
        (TraceFilter(api_key="team"), 7),
        (TraceFilter(kind="embed"), 1),
        (TraceFilter(since=NOW - 60 * 4.5), 5),
        (TraceFilter(since=NOW - 60 * 10.5, until=NOW - 60 * 4.5), 6),
        (TraceFilter(status="failed", node="n2", tag="app:x"), 1),
    ],
)
def test_each_filter_counts_and_pages_the_same(
    store: Any, where: TraceFilter, expected: int
) -> None:
    assert trace_page(store, where, limit=3)["total"] == expected
    assert len(_all_pages(store, where, limit=3)) == expected


def test_one_trace_comes_whole(store: Any) -> None:
    found = trace(store, "r003")
    assert found is not None and found["notes"] == ["pinned num_ctx"]
    assert found["attempts"][0]["node"] == "n1"
    assert found["scores"] and found["queue_ms"] == 0.0
    assert trace(store, "nope") is None


def test_a_bad_cursor_is_refused() -> None:
    for bad in ("x", "12", ":id", "abc:id"):
        with pytest.raises(ValueError):
            parse_cursor(bad)
    assert parse_cursor("17:a:b") == (17, "a:b")


def test_the_log_over_http(make_sim: Any, make_router: Any) -> None:
    router = make_router(nodes=[make_sim(name="n1")])
    url = router.url
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}
    body["stream"] = False
    for tag in ("a", "b", "a"):
        reply = httpx.post(f"{url}/api/chat", json=body, headers={"X-Herd-Tags": tag}, timeout=30)
        assert reply.status_code == 200
    assert httpx.post(f"{url}/api/chat", json={**body, "model": "zz"}).status_code == 404
    sink = next(s for s in router.app.state.router.sinks if s.name == "duckdb")
    router.call(sink.flush())
    api = f"{url}/dashboard/api/traces"
    page = httpx.get(api, params={"limit": 2}).json()
    assert len(page["traces"]) == 2 and page["total"] == 4 and page["next"]
    rest = httpx.get(api, params={"limit": 2, "cursor": page["next"]}).json()
    assert rest["next"] is None and len(rest["traces"]) == 2
    assert httpx.get(api, params={"tag": "a"}).json()["total"] == 2
    assert httpx.get(api, params={"status": "rejected"}).json()["traces"][0]["model"] == "zz"
    one = page["traces"][0]["request_id"]
    assert httpx.get(f"{api}/{one}").json()["request_id"] == one
    assert httpx.get(f"{api}/nope").status_code == 404
    assert httpx.get(api, params={"cursor": "junk"}).status_code == 400
    assert httpx.get(api, params={"since": 10, "until": 5}).status_code == 400
    facets = httpx.get(f"{api}/facets").json()
    assert facets["tag"] == ["a", "b"] and "rejected" in facets["status"]
