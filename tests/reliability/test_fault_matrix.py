"""Broken nodes, in-process: a node that dies before its first byte or mid-stream, hangs,
flaps or goes away; and a client that leaves. Node health is judged from evidence: one
failed request never takes a node offline, and a client's abort is never the node's fault."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

LLAMA = "llama3.2:3b"
CHAT = {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}], "stream": False}
ON_A = {"X-Herd-Node": "a"}


def wait_for(condition: Callable[[], object], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def pair(make_sim):
    return make_sim(name="a"), make_sim(name="b")


@pytest.fixture
def router(make_router, pair):
    return make_router(
        nodes=list(pair),
        routing={"first_byte_timeout": 2.0, "retry_backoff_s": 0},
        fleet={"poll_interval": 60},
    )


def states(router) -> dict[str, str]:
    return {view.name: view.status for view in router.gateway.nodes()}


def test_a_node_that_dies_before_its_first_byte_is_retried_and_stays_online(router, pair):
    pair[0].die(count=1, after_chunks=0)
    reply = httpx.post(router.url + "/api/chat", json=CHAT, headers=ON_A, timeout=30)
    assert reply.status_code == 200 and reply.json()["done"] is True
    assert reply.headers["x-herd-node"] == "b" and reply.headers["x-herd-retries"] == "1"
    assert states(router) == {"a": "online", "b": "online"}  # one reset is no evidence


def test_a_node_that_dies_mid_stream_ends_in_an_in_band_error(router, pair):
    pair[0].die(count=1, after_chunks=3)
    body = dict(CHAT, stream=True)
    with httpx.stream("POST", router.url + "/api/chat", json=body, headers=ON_A) as reply:
        assert reply.status_code == 200 and reply.headers["x-herd-node"] == "a"
        lines = [json.loads(line) for line in reply.iter_lines() if line]
    assert "error" in lines[-1] and not any(line.get("done") for line in lines)
    assert states(router)["a"] == "online"


def test_a_hanging_node_is_left_for_another_after_the_first_byte_timeout(router, pair):
    pair[0].hang(count=1, seconds=10)
    reply = httpx.post(router.url + "/api/chat", json=CHAT, headers=ON_A, timeout=30)
    assert reply.status_code == 200 and reply.headers["x-herd-node"] == "b"
    assert states(router)["a"] == "online"


def test_a_node_that_is_gone_goes_offline_on_the_evidence_of_its_own_poll(router, pair):
    pair[0].stop()
    reply = httpx.post(router.url + "/api/chat", json=CHAT, headers=ON_A, timeout=30)
    assert reply.status_code == 200 and reply.headers["x-herd-node"] == "b"
    wait_for(lambda: states(router)["a"] == "offline")  # the failure made it poll a at once


def test_repeated_failures_within_the_window_take_a_node_offline(make_router, pair):
    router = make_router(
        nodes=list(pair),
        routing={"retry_backoff_s": 0},
        fleet={"poll_interval": 60, "failures_to_offline": 2, "failure_window_s": 60},
    )
    pair[0].die(count=2, after_chunks=0)
    for _ in range(2):
        reply = httpx.post(router.url + "/api/chat", json=CHAT, headers=ON_A, timeout=30)
        assert reply.status_code == 200 and reply.headers["x-herd-node"] == "b"
    assert states(router)["a"] == "offline"


def test_a_flapping_node_loses_no_request(router, pair):
    a = pair[0]
    for round_ in range(4):
        a.stop() if round_ % 2 == 0 else a.start()
        for _ in range(5):
            reply = httpx.post(router.url + "/api/chat", json=CHAT, headers=ON_A, timeout=30)
            assert reply.status_code == 200 and reply.json()["done"] is True


def test_a_client_that_leaves_before_the_first_byte_is_not_the_nodes_failure(router, pair):
    pair[0].hang(count=1, seconds=1.5)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(router.url + "/api/chat", json=CHAT, headers=ON_A, timeout=0.3)
    wait_for(lambda: router.gateway.queue_stats()["a"][LLAMA]["in_flight"] == 0)
    assert router.gateway.queue_stats()["a"][LLAMA]["failed"] == 0
    assert states(router)["a"] == "online"


def test_a_client_that_leaves_mid_stream_is_not_the_nodes_failure(make_sim, make_router):
    slow = make_sim(name="a", gen_tps=50)
    router = make_router(nodes=[slow])
    body = dict(CHAT, stream=True)
    with httpx.stream("POST", router.url + "/api/chat", json=body) as reply:
        next(reply.iter_lines())
    wait_for(lambda: router.gateway.queue_stats()["a"][LLAMA]["in_flight"] == 0)
    assert router.gateway.queue_stats()["a"][LLAMA]["failed"] == 0
    assert states(router)["a"] == "online"
