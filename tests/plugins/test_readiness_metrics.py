"""`/readyz` for load balancers, and the queue-depth and build-info metrics."""

from __future__ import annotations

import platform
import threading
import time

import herd
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import emulated


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_readyz_is_503_until_a_node_is_online(make_sim, make_router) -> None:
    empty = make_router(nodes=[])
    reply = httpx.get(empty.url + "/readyz")
    assert reply.status_code == 503
    assert reply.json()["reason"] == "no nodes configured or found"
    assert httpx.get(empty.url + "/healthz").status_code == 200  # alive, just not ready
    # probes that ask with HEAD (uptime monitors, curl -I) get the same status, no body
    for path, status in (("/readyz", 503), ("/healthz", 200)):
        head = httpx.head(empty.url + path)
        assert (head.status_code, head.content) == (status, b""), path

    dead = make_router(nodes=[{"name": "gone", "url": "http://127.0.0.1:9"}])
    reply = httpx.get(dead.url + "/readyz")
    assert reply.status_code == 503 and reply.json()["reason"] == "no node is online (1 known)"

    live = make_router(nodes=[make_sim(name="a"), {"name": "gone", "url": "http://127.0.0.1:9"}])
    reply = httpx.get(live.url + "/readyz")
    assert reply.status_code == 200 and reply.json() == {"status": "ready", "online": ["a"]}
    assert httpx.head(live.url + "/readyz").status_code == 200


def test_readyz_needs_no_api_key(make_sim, make_router) -> None:
    router = make_router(
        nodes=[make_sim(name="a")], auth={"api_keys": [{"name": "ci", "key": "k" * 16}]}
    )
    assert httpx.get(router.url + "/api/tags").status_code == 401
    assert httpx.get(router.url + "/readyz").status_code == 200


def test_queue_depth_and_build_info(make_sim, make_router) -> None:
    sim = make_sim(name="a", models=[emulated("slow:1b", 0.5)], gen_tps=20, reply_tokens=100)
    router = make_router(nodes=[{"name": "a", "url": sim.url, "num_parallel": 1}])
    text = httpx.get(router.url + "/metrics").text
    build = {"version": herd.__version__, "python": platform.python_version()}
    assert metric(text, "herd_build_info", **build) == 1
    assert metric(text, "herd_queue_depth", node="a", model="slow:1b") is None

    started = threading.Event()

    def chat() -> None:
        body = {"model": "slow:1b", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream("POST", router.url + "/api/chat", json=body, timeout=120) as reply:
            for _ in reply.iter_lines():
                started.set()

    workers = [threading.Thread(target=chat, daemon=True) for _ in range(2)]
    for worker in workers:
        worker.start()
    assert started.wait(60)
    deadline = time.monotonic() + 60
    depth = None
    while time.monotonic() < deadline:
        text = httpx.get(router.url + "/metrics").text
        depth = metric(text, "herd_queue_depth", node="a", model="slow:1b")
        if depth == 1:
            break
        time.sleep(0.05)
    assert depth == 1  # one streams on the node's only slot, the other waits in the queue
    for worker in workers:
        worker.join(120)
    text = httpx.get(router.url + "/metrics").text
    assert metric(text, "herd_queue_depth", node="a", model="slow:1b") == 0
