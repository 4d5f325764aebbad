"""The fleet API: status, drain and undrain, the admin key, and what routing makes of them."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import ollama
import pytest
from herd._engine.auth import check_admin
from herd.errors import HerdError
from herd_node.runner import AgentHandle

from tests.conftest import emulated


def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def chat(router, model: str = "llama3.2:3b") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    return httpx.post(router.url + "/api/chat", json=body, timeout=30)


@pytest.fixture
def pair(make_sim):
    a = make_sim(name="a", models=[emulated("llama3.2:3b")])
    b = make_sim(name="b", models=[emulated("llama3.2:3b")])
    ollama.Client(host=a.url).generate(model="llama3.2:3b", prompt="")  # a ranks first
    return a, b


def test_status_lists_yaml_nodes_with_state_and_summary(make_router, pair) -> None:
    router = make_router(nodes=pair)
    body = httpx.get(router.url + "/fleet/status").json()
    assert [n["name"] for n in body["nodes"]] == ["a", "b"]
    a = body["nodes"][0]
    assert a["state"] == "online" and a["source"] == "yaml" and not a["agent"]
    assert a["resources"]["num_parallel_source"] == "unknown"
    assert [m["name"] for m in a["loaded"]] == ["llama3.2:3b"]
    assert a["queue"]["in_flight"] == 0 and a["last_seen"] > 0
    assert body["summary"]["nodes"] == 2 and body["summary"]["online"] == 2
    assert body["router"]["agents"] == "accepted"


def test_status_includes_scheduler_queues_when_it_has_them(make_router, pair) -> None:
    router = make_router(nodes=pair)
    router.gateway.scheduler.queue_stats = lambda: {"a": {"llama3.2:3b": {"pending": 0}}}
    body = httpx.get(router.url + "/fleet/status").json()
    assert body["queues"] == {"a": {"llama3.2:3b": {"pending": 0}}}


def test_drained_node_gets_no_new_requests_until_undrained(make_router, pair) -> None:
    router = make_router(nodes=pair, auth={"admin_key": "adm"})
    assert chat(router).headers["x-herd-node"] == "a"
    url = router.url + "/fleet/nodes/a/drain"
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    reply = httpx.post(url, headers={"Authorization": "Bearer adm"})
    assert reply.status_code == 200
    assert reply.json() == {"node": "a", "draining": True, "state": "draining"}
    assert all(chat(router).headers["x-herd-node"] == "b" for _ in range(3))
    a = httpx.get(router.url + "/fleet/status").json()["nodes"][0]
    assert a["state"] == "draining" and a["status"] == "online"
    undrain = httpx.post(
        router.url + "/fleet/nodes/a/undrain", headers={"Authorization": "Bearer adm"}
    )
    assert undrain.json()["state"] == "online"
    assert chat(router).headers["x-herd-node"] == "a"


def test_drain_of_an_unknown_node_is_404(make_router, pair) -> None:
    router = make_router(nodes=pair)
    reply = httpx.post(router.url + "/fleet/nodes/nope/drain")
    assert reply.status_code == 404 and "a, b" in reply.json()["error"]


def test_without_admin_key_only_this_machine_may_drain() -> None:
    check_admin({"client": ("127.0.0.1", 5), "headers": []}, "")
    with pytest.raises(HerdError) as info:
        check_admin({"client": ("10.0.0.9", 5), "headers": []}, "")
    assert info.value.status == 403 and "admin_key" in info.value.message


def test_degraded_node_serves_only_when_no_healthy_node_can(make_router, pair) -> None:
    a, b = pair
    router = make_router(fleet={"degraded_after": 3, "offline_after": 1000})
    agents = [
        AgentHandle(router=router.url, ollama=sim.url, name=sim.name, interval=0.2).start()
        for sim in (a, b)
    ]
    try:
        nodes = router.gateway.fleet.nodes
        wait_for(lambda: {"a", "b"} <= set(nodes) and nodes["a"].view.loaded)
        agents[0].kill()
        wait_for(lambda: nodes["a"].view.status == "degraded")
        assert all(chat(router).headers["x-herd-node"] == "b" for _ in range(3))
        httpx.post(router.url + "/fleet/nodes/b/drain")
        assert chat(router).headers["x-herd-node"] == "a"  # the last resort
    finally:
        for agent in agents:
            agent.kill()
