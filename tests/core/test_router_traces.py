"""Every request leaves a trace through herd_request_finished, whatever its ending."""

from __future__ import annotations

import httpx

from tests.conftest import emulated
from tests.core.trace_collector import collector, wait_traces

__all__ = ["collector"]  # the fixture, used by name


def body(model: str = "llama3.2:3b", **extra):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_completed_request_trace_has_node_tokens_and_timings(make_sim, make_router, collector):
    sim = make_sim(name="a", models=[emulated("llama3.2:3b")])
    router = make_router(nodes=[sim], plugins={"load": [collector]})
    httpx.post(router.url + "/api/chat", json=body(stream=False))
    (trace,) = wait_traces(1)
    assert trace.status == "completed" and trace.node == "a"
    assert trace.completion_tokens > 0 and trace.prompt_tokens > 0
    assert trace.latency_ms >= trace.ttft_ms >= 0
    assert trace.retries == 0 and trace.scores["a"]


def test_rejected_request_leaves_a_trace(make_sim, make_router, collector):
    sim = make_sim(name="a", models=[emulated("llama3.2:3b")])
    router = make_router(nodes=[sim], plugins={"load": [collector]})
    httpx.post(router.url + "/api/chat", json=body("missing-model"))
    (trace,) = wait_traces(1)
    assert trace.status == "rejected" and trace.http_status == 404
    assert trace.done_at >= trace.received_at and trace.latency_ms >= 0


def test_in_band_node_error_is_a_failed_trace(make_sim, make_router, collector):
    sim = make_sim(name="a", models=[emulated("llama3.2:3b")])
    router = make_router(nodes=[sim], plugins={"load": [collector]})
    httpx.post(sim.url + "/_sim/die", json={"count": 1, "after_chunks": 2, "error": "gpu fell off"})
    reply = httpx.post(router.url + "/api/chat", json=body())
    assert b"gpu fell off" in reply.content
    (trace,) = wait_traces(1)
    assert trace.status == "failed" and "gpu fell off" in trace.error


def test_retried_request_trace_names_the_excluded_node(make_sim, make_router, collector):
    a = make_sim(name="a", models=[emulated("llama3.2:3b")])
    b = make_sim(name="b", models=[emulated("llama3.2:3b")])
    httpx.post(a.url + "/api/generate", json={"model": "llama3.2:3b"})
    router = make_router(nodes=[a, b], plugins={"load": [collector]})
    httpx.post(a.url + "/_sim/fail", json={"count": 1, "status": 500})
    httpx.post(router.url + "/api/chat", json=body(stream=False))
    (trace,) = wait_traces(1)
    assert trace.node == "b" and trace.retries == 1
    assert trace.excluded_nodes == ["a"]
    assert [attempt.node for attempt in trace.attempts] == ["a", "b"]
    assert trace.attempts[0].error


def test_client_disconnect_is_recorded(make_sim, make_router, collector):
    sim = make_sim(name="a", models=[emulated("llama3.2:3b")], gen_tps=20, reply_tokens=500)
    router = make_router(nodes=[sim], plugins={"load": [collector]})
    with httpx.stream("POST", router.url + "/api/chat", json=body(), timeout=30) as reply:
        lines = reply.iter_lines()
        for _ in range(3):
            next(lines)
    (trace,) = wait_traces(1)
    assert trace.status == "client_disconnected"
    # the node's own count never came: the answer's lines it sent are counted instead
    assert 3 <= trace.completion_tokens < 500
    assert any("counted from the" in note for note in trace.notes)


def test_a_stream_that_breaks_counts_the_pieces_it_sent(make_sim, make_router, collector):
    sim = make_sim(name="a", models=[emulated("llama3.2:3b")])
    router = make_router(nodes=[sim], plugins={"load": [collector]})
    httpx.post(sim.url + "/_sim/die", json={"count": 1, "after_chunks": 4, "error": "oom"})
    httpx.post(router.url + "/api/chat", json=body())
    (trace,) = wait_traces(1)
    assert trace.status == "failed" and trace.completion_tokens == 4
    assert any("counted from the 4 answer lines" in note for note in trace.notes)
