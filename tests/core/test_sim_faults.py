"""herd-sim: failure injection (/_sim/*), client disconnects and node restarts."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
import pytest
from herd.testing import SimConfig, SimNode, expected_reply

CHAT = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def make_node() -> Iterator[Callable[..., SimNode]]:
    nodes: list[SimNode] = []

    def factory(**fields: object) -> SimNode:
        sim = SimNode(SimConfig(**fields)).start()  # type: ignore[arg-type]
        nodes.append(sim)
        return sim

    yield factory
    for sim in nodes:
        sim.stop()


@pytest.fixture
def node(make_node) -> SimNode:
    return make_node()


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def control(node: SimNode, action: str, **body: object) -> dict:
    response = httpx.post(f"{node.url}/_sim/{action}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def read_lines(url: str, body: dict) -> tuple[list[dict], Exception | None]:
    lines: list[dict] = []
    try:
        with httpx.stream("POST", url, json=body, timeout=10) as response:
            for line in response.iter_lines():
                lines.append(json.loads(line))
    except httpx.HTTPError as error:
        return lines, error
    return lines, None


def test_fail_answers_the_next_n_inference_requests_before_any_byte(node: SimNode) -> None:
    control(node, "fail", count=4, status=503, error="boom")
    calls = [
        ("/api/chat", CHAT),
        ("/api/generate", {"model": "llama3.2:3b", "prompt": "x"}),
        ("/api/embed", {"model": "all-minilm", "input": "x"}),
        ("/api/embeddings", {"model": "all-minilm", "prompt": "x"}),
    ]
    for path, body in calls:
        assert httpx.get(node.url + "/api/tags").status_code == 200  # not consumed
        response = httpx.post(node.url + path, json=body)
        assert (response.status_code, response.json()) == (503, {"error": "boom"})
    assert httpx.post(node.url + "/api/chat", json=CHAT).status_code == 200
    assert node.stats()["failed"] == 4


def test_fail_defaults_to_one_500_like_a_crashed_runner(node: SimNode) -> None:
    armed = control(node, "fail")
    assert armed["armed"]["fail"] == 1
    response = httpx.post(node.url + "/api/chat", json=CHAT)
    assert response.status_code == 500 and "runner" in response.json()["error"]


def test_hang_delays_the_next_request_before_anything_is_sent(node: SimNode) -> None:
    control(node, "hang", count=1, seconds=0.5)
    started = time.monotonic()
    assert httpx.post(node.url + "/api/chat", json=CHAT, timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.45
    with pytest.raises(httpx.ReadTimeout):
        control(node, "hang", count=1, seconds=5)
        httpx.post(node.url + "/api/chat", json=CHAT, timeout=0.3)
    assert node.stats()["hung"] == 2


def test_die_aborts_the_connection_after_k_chunks(node: SimNode) -> None:
    control(node, "die", count=1, after_chunks=2)
    lines, error = read_lines(node.url + "/api/chat", CHAT)
    assert isinstance(error, httpx.RemoteProtocolError)
    assert [line["message"]["content"] for line in lines] == expected_reply("llama3.2:3b", "hi", 2)
    wait_until(lambda: node.stats()["active"] == 0)
    stats = node.stats()
    assert (stats["died"], stats["cancelled"]) == (1, 0)
    lines, error = read_lines(node.url + "/api/chat", CHAT)
    assert error is None and lines[-1]["done"] is True


def test_die_after_zero_chunks_sends_no_response_at_all(node: SimNode) -> None:
    control(node, "die", count=2, after_chunks=0)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(node.url + "/api/chat", json=CHAT)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(node.url + "/api/embed", json={"model": "all-minilm", "input": "x"})
    assert httpx.post(node.url + "/api/chat", json=CHAT).status_code == 200


def test_die_with_an_error_ends_the_stream_with_an_error_line(node: SimNode) -> None:
    control(node, "die", count=2, after_chunks=3, error="runner crashed")
    lines, error = read_lines(node.url + "/api/chat", CHAT)
    assert error is None and len(lines) == 4
    assert lines[-1] == {"error": "runner crashed"}
    assert not any(line.get("done") for line in lines)
    with pytest.raises(ollama.ResponseError) as raised:
        list(ollama.Client(host=node.url).chat(**CHAT, stream=True))
    assert raised.value.status_code == -1 and raised.value.error == "runner crashed"


def test_silent_stalls_every_request_until_lifted(node: SimNode) -> None:
    control(node, "silent", seconds=30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(node.url + "/api/tags", timeout=0.3)
    with ThreadPoolExecutor(1) as pool:
        stalled = pool.submit(httpx.get, node.url + "/", timeout=20)
        time.sleep(0.2)
        assert not stalled.done()
        started = time.monotonic()
        control(node, "silent", seconds=0)
        assert stalled.result().text == "Ollama is running"
        assert time.monotonic() - started < 10
    assert httpx.get(node.url + "/api/tags", timeout=5).status_code == 200


def test_reset_disarms_everything_and_zeroes_counters(node: SimNode) -> None:
    httpx.post(node.url + "/api/chat", json=CHAT)
    control(node, "fail", count=5)
    control(node, "die", count=5)
    stats = control(node, "reset")
    assert stats["armed"] == {"fail": 0, "hang": 0, "die": 0, "silent_seconds": 0.0}
    assert stats["completed"] == 0 and stats["requests"] == {}
    assert httpx.post(node.url + "/api/chat", json=CHAT).status_code == 200


def test_stats_count_requests_by_endpoint(node: SimNode) -> None:
    httpx.get(node.url + "/api/tags")
    httpx.get(node.url + "/api/tags")
    httpx.post(node.url + "/api/chat", json=CHAT)
    stats = httpx.get(node.url + "/_sim/stats").json()
    assert stats["requests"] == {"/api/tags": 2, "/api/chat": 1}
    assert stats["completed"] == 1 and stats["loads"] == 1 and stats["max_concurrent"] == 1
    assert stats["loaded"] == ["llama3.2:3b"]


def test_bad_control_bodies_are_400(node: SimNode) -> None:
    assert httpx.post(node.url + "/_sim/fail", json={"count": -1}).status_code == 400
    assert httpx.post(node.url + "/_sim/die", json={"after": 1}).status_code == 400


def test_a_client_disconnect_stops_the_generation_and_counts_as_cancelled(make_node) -> None:
    sim = make_node(gen_tps=20, reply_tokens=1000)
    with httpx.stream("POST", sim.url + "/api/chat", json=CHAT, timeout=10) as response:
        lines = response.iter_lines()
        next(lines), next(lines)
    wait_until(lambda: sim.stats()["cancelled"] == 1)
    wait_until(lambda: sim.stats()["active"] == 0)
    assert sim.stats()["completed"] == 0


def test_a_non_streamed_request_abandoned_by_its_client_is_cancelled(make_node) -> None:
    sim = make_node(gen_tps=20, reply_tokens=1000)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(sim.url + "/api/chat", json={**CHAT, "stream": False}, timeout=0.3)
    wait_until(lambda: sim.stats()["cancelled"] == 1 and sim.stats()["active"] == 0)


def test_a_request_abandoned_in_the_queue_leaves_the_queue(make_node) -> None:
    sim = make_node(gen_tps=20, reply_tokens=1000, num_parallel=1)
    with httpx.stream("POST", sim.url + "/api/chat", json=CHAT, timeout=10) as response:
        lines = response.iter_lines()  # keep a reference: a dropped iterator closes the stream
        next(lines)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(sim.url + "/api/chat", json=CHAT, timeout=0.3)
        wait_until(lambda: sim.stats()["queued"] == 0 and sim.stats()["cancelled"] == 1)
    wait_until(lambda: sim.stats()["active"] == 0)


def test_a_stopped_node_refuses_connections_and_restarts_on_the_same_port(make_node) -> None:
    sim = make_node()
    url, port = sim.url, sim.port
    sim.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/")
    sim.start()
    assert (sim.url, sim.port) == (url, port)
    assert httpx.get(url + "/").text == "Ollama is running"


def test_a_taken_port_is_reported_at_start(make_node) -> None:
    sim = make_node()
    with pytest.raises(OSError):
        SimNode(port=sim.port).start()


def test_simnode_methods_arm_the_same_failures(node: SimNode) -> None:
    node.fail(count=1, status=502)
    assert httpx.post(node.url + "/api/chat", json=CHAT).status_code == 502
    node.die(after_chunks=1, error="gone")
    lines, _ = read_lines(node.url + "/api/chat", CHAT)
    assert lines[-1] == {"error": "gone"}
    node.hang(seconds=0.01)
    node.silent(0)
    node.reset()
    assert node.stats()["armed"]["hang"] == 0


def test_a_free_port_is_picked_when_port_is_zero() -> None:
    with SimNode() as sim:
        assert sim.port > 0
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5):
            pass
