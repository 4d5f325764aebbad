"""A client that leaves before its answer began: a request waiting in herd's queue is taken
out of it and never sent to a node, and one a node is still preparing is cancelled there;
each is traced ``client_disconnected``. Before, herd sent a queued request to the node once
its turn came and generated the whole answer for nobody, tracing it ``completed``."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

from tests.conftest import emulated
from tests.core.trace_collector import collector, wait_traces

__all__ = ["collector"]  # the fixture, used by name

MODEL = "llama3.2:3b"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def _wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def _send_and_leave(url: str, body: bytes, wait: Any) -> None:
    """Send a chat on a raw connection, wait until ``wait()`` holds, then close it unread."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: herd\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        _wait_for(wait)


def _queue(router: Any) -> dict[str, int]:
    return httpx.get(router.url + "/fleet/queue").json()["nodes"]["n1"][MODEL]


def test_a_queued_request_whose_client_left_never_reaches_the_node(
    make_sim: Any, make_router: Any, collector: Any
) -> None:
    # the first chat holds the one slot for 3 s: long enough, on a busy machine, for the
    # second to queue and its client to leave before the slot frees
    sim = make_sim(name="n1", models=[emulated(MODEL)], gen_tps=50, reply_tokens=150)
    router = make_router(
        nodes=[{"name": "n1", "url": sim.url, "num_parallel": 1}], plugins={"load": [collector]}
    )
    with httpx.stream("POST", router.url + "/api/chat", json=CHAT, timeout=30) as first:
        lines = first.iter_lines()
        next(lines)  # the one slot is taken
        body = httpx.Request("POST", "/", json=CHAT).content
        _send_and_leave(router.url, body, lambda: _queue(router)["pending"] == 1)
        _wait_for(lambda: _queue(router)["pending"] == 0)  # out of the queue at once
        assert _queue(router)["in_flight"] == 1
        rest = list(lines)
    assert rest[-1].replace(" ", "").find('"done":true') >= 0
    traces = {t.status: t for t in wait_traces(2)}
    left = traces["client_disconnected"]
    assert left.node == "" and left.http_status == 499 and "waited" in left.error
    assert traces["completed"].node == "n1"
    time.sleep(0.3)  # (a request sent late would show in the node's count by now)
    assert sim.stats()["requests"].get("/api/chat") == 1


def test_a_client_that_leaves_before_the_first_byte_cancels_the_node_request(
    make_sim: Any, make_router: Any, collector: Any
) -> None:
    # a long prompt at 20 tokens/s: the node works on it for seconds before its first byte
    sim = make_sim(name="n1", models=[emulated(MODEL)], prompt_tps=20)
    router = make_router(nodes=[sim], plugins={"load": [collector]})
    long_prompt = {**CHAT, "messages": [{"role": "user", "content": "word " * 400}]}
    body = httpx.Request("POST", "/", json=long_prompt).content
    _send_and_leave(router.url, body, lambda: sim.stats()["active"] == 1)
    _wait_for(lambda: sim.stats()["cancelled"] == 1)
    (trace,) = wait_traces(1)
    assert trace.status == "client_disconnected"
    _wait_for(lambda: router.gateway.fleet.nodes["n1"].view.in_flight == 0)


def test_a_batched_embedding_whose_client_left_frees_every_batch(
    make_sim: Any, make_router: Any, collector: Any
) -> None:
    embedder = emulated("all-minilm:latest", 0.05, ("embedding",))
    fast, slow = (make_sim(name=name, models=[embedder]) for name in ("fast", "slow"))
    httpx.post(slow.url + "/_sim/hang", json={"count": 4, "seconds": 20})
    router = make_router(
        nodes=[fast, slow], workloads={"embed_batch_size": 1}, plugins={"load": [collector]}
    )
    views = {name: router.gateway.fleet.nodes[name].view for name in ("fast", "slow")}
    body = httpx.Request("POST", "/", json={"model": "all-minilm", "input": list("abcd")}).content
    host, port = router.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/embed HTTP/1.1\r\nHost: herd\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        # some batches answered on the fast node, the rest held by the slow one
        _wait_for(lambda: fast.stats()["completed"] >= 1 and views["slow"].in_flight >= 1)
    _wait_for(lambda: views["fast"].in_flight == views["slow"].in_flight == 0, timeout=5)
    statuses = {trace.status for trace in wait_traces(2)}
    assert statuses == {"client_disconnected"}, statuses
