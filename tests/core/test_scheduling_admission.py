"""Queues and admission end to end: holding, 503/429, retries through queues, the reaper."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import msgspec

from tests.conftest import emulated
from tests.core.routing_helpers import MODEL, chat, load, long_stream, queue_row, stats, wait_for

SLOW = {"gen_tps": 20, "reply_tokens": 400}


def one_slot(*sims):
    return [{"name": s.name, "url": s.url, "num_parallel": 1} for s in sims]


def test_a_queue_full_everywhere_gives_503_with_retry_after_after_the_hold(make_sim, make_router):
    sim = make_sim(name="a", models=[emulated(MODEL)], **SLOW)
    router = make_router(nodes=one_slot(sim), routing={"max_queue_depth": 0, "hold_timeout_s": 0.5})
    with long_stream(router):
        started = time.monotonic()
        reply = chat(router)
        held_for = time.monotonic() - started
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"
    assert "every queue for model 'llama3.2:3b' is full" in reply.json()["error"]
    assert held_for >= 0.45  # it waited for room before giving up
    assert stats(sim)["max_concurrent"] == 1


def test_a_held_request_is_served_when_a_slot_frees(make_sim, make_router):
    sim = make_sim(name="a", models=[emulated(MODEL)], **SLOW)
    router = make_router(nodes=one_slot(sim), routing={"max_queue_depth": 0})
    with ThreadPoolExecutor(1) as pool:
        with long_stream(router):
            waiting = pool.submit(chat, router)
            wait_for(lambda: router.gateway.scheduler.board.held == 1)
        reply = waiting.result(timeout=30)  # the stream ended: its slot went to the held one
    assert reply.status_code == 200
    assert queue_row(router, "a")["done"] == 2


def test_a_retry_goes_through_the_next_nodes_queue(make_sim, make_router):
    a = make_sim(name="a", models=[emulated(MODEL)])
    b = make_sim(name="b", models=[emulated(MODEL)], gen_tps=100, reply_tokens=20)
    load(a)
    router = make_router(nodes=one_slot(a, b), routing={"retry_backoff_s": 0})
    a.fail(count=100, status=500, error="runner crashed")
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: chat(router, options={}), range(6)))
    assert all(r.status_code == 200 for r in replies)
    assert {r.headers["x-herd-node"] for r in replies} == {"b"}
    assert any(r.headers["x-herd-retries"] == "1" for r in replies)
    # every retry waited its turn in b's queue: b never ran two at once
    assert stats(b)["max_concurrent_by_model"][MODEL] == 1
    assert queue_row(router, "b")["done"] == 6
    assert queue_row(router, "a")["failed"] >= 1


def test_a_nodes_own_busy_answer_does_not_exclude_it(make_sim, make_router):
    a = make_sim(name="a", models=[emulated(MODEL)])
    router = make_router(nodes=[a], routing={"retry_backoff_s": 0})
    a.fail(count=1, status=503, error="server busy, please try again.")
    reply = chat(router)
    assert reply.status_code == 200
    assert reply.headers["x-herd-node"] == "a" and reply.headers["x-herd-retries"] == "1"


def test_the_reaper_fails_a_stream_that_stopped_and_frees_its_slot(make_sim, make_router):
    sim = make_sim(name="a", models=[emulated(MODEL)], gen_tps=1, reply_tokens=30)
    router = make_router(nodes=one_slot(sim), routing={"stale_timeout_s": 0.3})
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", router.url + "/api/chat", json=body, timeout=60) as reply:
        lines = [msgspec.json.decode(line) for line in reply.iter_lines() if line]
    assert "error" in lines[-1] and not any(line.get("done") for line in lines)
    assert len(lines) < 10  # cut long before its 30 tokens
    queue = httpx.get(router.url + "/fleet/queue").json()
    assert queue["reaped"] == 1
    assert queue["nodes"]["a"][MODEL]["in_flight"] == 0
    assert queue["nodes"]["a"][MODEL]["failed"] == 1
    wait_for(lambda: stats(sim)["cancelled"] == 1)  # the upstream was closed too
    assert chat(router).status_code == 200  # and the slot serves again


def test_the_per_client_cap_gives_429_with_retry_after(make_sim, make_router):
    sim = make_sim(name="a", models=[emulated(MODEL)], **SLOW)
    router = make_router(nodes=[sim], routing={"max_in_flight_per_client": 1})
    with long_stream(router):
        reply = chat(router)
        assert reply.status_code == 429 and reply.headers["retry-after"] == "1"
        assert "too many requests in flight" in reply.json()["error"]
    wait_for(lambda: queue_row(router, "a").get("in_flight") == 0)
    assert chat(router).status_code == 200
