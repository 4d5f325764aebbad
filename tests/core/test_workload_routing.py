"""Routing of transcription and image jobs: capability, spreading, retries, toggles, timeouts."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import msgspec
import pytest
from herd_sim.images import IMAGE_MODEL
from herd_sim.transcribe import TRANSCRIBE_MODEL

from tests.conftest import emulated
from tests.core.workload_nodes import (
    WORKLOADS_ON,
    capture_traces,
    node_with,
    tone_wav,
    workload_sim,
)


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def transcribe(router, audio: bytes | None = None, **fields) -> httpx.Response:
    files = {"file": ("speech.wav", audio or tone_wav(0.5), "audio/wav")}
    data = {"model": TRANSCRIBE_MODEL.name, **fields}
    return httpx.post(router.url + "/v1/audio/transcriptions", files=files, data=data, timeout=60)


def test_transcription_goes_only_to_nodes_offering_it(make_sim, make_router) -> None:
    a, b, c = (workload_sim(make_sim, name) for name in "abc")
    router = make_router(
        nodes=[node_with(a, stt=False), node_with(b), node_with(c, stt=False)],
        workloads=WORKLOADS_ON,
    )
    traces = capture_traces(router)
    for _ in range(4):
        reply = transcribe(router)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-herd-node"] == "b"
    assert [t.kind for t in traces] == ["stt"] * 4
    queues = httpx.get(router.url + "/fleet/queue").json()["nodes"]
    assert (
        queues["b"][TRANSCRIBE_MODEL.name] | {"done": 4, "kind": "stt"}
        == queues["b"][TRANSCRIBE_MODEL.name]
    )
    assert traces[0].rejections == {
        "a": "no transcribe capability",
        "c": "no transcribe capability",
    }
    # a chat request still goes anywhere with the model
    chat = httpx.post(
        router.url + "/api/chat",
        json={
            "model": "llama3.2:3b",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": False,
        },
    )
    assert chat.status_code == 200


def test_concurrent_transcriptions_spread_over_two_nodes(make_sim, make_router) -> None:
    a, b = workload_sim(make_sim, "a"), workload_sim(make_sim, "b")
    for node in (a, b):
        node.hang(count=4, seconds=0.6)
    router = make_router(nodes=[node_with(a), node_with(b)], workloads=WORKLOADS_ON)
    audios = [tone_wav(0.3, hz) for hz in (300, 400, 500, 600)]
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda audio: transcribe(router, audio), audios))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    served = [r.headers["x-herd-node"] for r in replies]
    assert set(served) == {"a", "b"}, served
    assert max(served.count("a"), served.count("b")) <= 3


def test_node_failing_before_output_is_retried_on_another(make_sim, make_router) -> None:
    a, b = workload_sim(make_sim, "a"), workload_sim(make_sim, "b")
    a.fail(count=5, status=500, error="whisper runner crashed")
    router = make_router(nodes=[node_with(a), node_with(b)], workloads=WORKLOADS_ON)
    reply = transcribe(router)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-herd-node"] == "b"
    assert reply.headers["x-herd-retries"] == "1"
    assert a.stats()["failed"] == 1


def test_node_dying_mid_job_is_retried_and_stays_online_for_chat(make_sim, make_router) -> None:
    a, b = workload_sim(make_sim, "a"), workload_sim(make_sim, "b")
    a.hang(count=1, seconds=10)
    router = make_router(nodes=[node_with(a), node_with(b)], workloads=WORKLOADS_ON)
    killer = threading.Timer(0.5, a.stop)
    killer.start()
    try:
        reply = httpx.post(
            router.url + "/api/generate-image",
            json={"model": IMAGE_MODEL.name, "prompt": "a lighthouse", "width": 32, "height": 32},
            timeout=30,
        )
    finally:
        killer.join()
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-herd-node"] == "b"
    assert reply.headers["x-herd-retries"] == "1"


@pytest.mark.parametrize(
    ("path", "toggle"),
    [
        ("/api/transcribe", "transcription"),
        ("/v1/audio/transcriptions", "transcription"),
        ("/api/generate-image", "image_generation"),
        ("/v1/images/generations", "image_generation"),
    ],
)
def test_switched_off_workloads_answer_503_saying_how_to_turn_them_on(
    make_sim, make_router, path: str, toggle: str
) -> None:
    a = workload_sim(make_sim, "a")
    router = make_router(nodes=[node_with(a)])
    if "images" in path or "image" in path:
        send = {"json": {"model": IMAGE_MODEL.name, "prompt": "a cat"}}
    else:
        field = "file" if path.startswith("/v1") else "audio"
        send = {
            "files": {field: ("a.wav", tone_wav(0.2), "audio/wav")},
            "data": {"model": TRANSCRIBE_MODEL.name},
        }
    reply = httpx.post(router.url + path, timeout=30, **send)
    assert reply.status_code == 503
    assert reply.headers["x-should-retry"] == "false"
    body = reply.json()
    message = body["error"]["message"] if path.startswith("/v1") else body["error"]
    assert f"{toggle}: true" in message
    assert f"HERD_WORKLOADS__{toggle.upper()}=true" in message
    # the toggle is read for every request: switching it on takes effect at once
    gateway = router.gateway
    workloads = msgspec.structs.replace(gateway.settings.workloads, **{toggle: True})
    gateway.settings = msgspec.structs.replace(gateway.settings, workloads=workloads)
    assert httpx.post(router.url + path, timeout=30, **send).status_code == 200


def test_image_timeout_cancels_the_generation_on_the_node(make_sim, make_router) -> None:
    a = workload_sim(make_sim, "a")
    a.hang(count=1, seconds=30)
    router = make_router(nodes=[node_with(a)], workloads={**WORKLOADS_ON, "image_timeout": 1.0})
    traces = capture_traces(router)
    started = time.monotonic()
    reply = httpx.post(
        router.url + "/v1/images/generations",
        json={"model": IMAGE_MODEL.name, "prompt": "slow"},
        timeout=30,
    )
    assert reply.status_code == 504
    assert "cancelled on the node" in reply.json()["error"]["message"]
    assert time.monotonic() - started < 10
    wait_for(lambda: a.stats()["cancelled"] == 1)
    assert traces[-1].kind == "image" and traces[-1].http_status == 504
    # the node is free again
    ok = httpx.post(
        router.url + "/v1/images/generations",
        json={"model": IMAGE_MODEL.name, "prompt": "fast", "size": "32x32"},
        timeout=30,
    )
    assert ok.status_code == 200


def test_unknown_workload_model_is_404(make_sim, make_router) -> None:
    a = workload_sim(make_sim, "a")
    router = make_router(nodes=[node_with(a)], workloads=WORKLOADS_ON)
    reply = transcribe(router, model="whisper-huge")
    assert reply.status_code == 404
    assert "whisper-huge" in reply.json()["error"]["message"]


def test_a_service_that_stops_answering_leaves_the_node_online(make_sim, make_router) -> None:
    a, stt = make_sim(name="a", models=[emulated("llama3.2:3b")]), workload_sim(make_sim, "stt")
    entry = {
        "name": "a",
        "url": a.url,
        "services": [{"type": "openai-compat", "url": stt.url, "models": [TRANSCRIBE_MODEL.name]}],
    }
    router = make_router(nodes=[entry], workloads=WORKLOADS_ON)
    assert transcribe(router).status_code == 200
    stt.stop()
    reply = transcribe(router)
    assert reply.status_code == 502
    view = router.gateway.fleet.nodes["a"].view
    assert view.status == "online"
    router.poll_now()
    assert "transcribe" not in view.capabilities
    assert transcribe(router).status_code == 404
    stt.start()
    router.poll_now()
    assert transcribe(router).status_code == 200
