"""The fleet: merged views, routing to the node with the model, retries, disconnects, offline."""

from __future__ import annotations

import socket
import time

import httpx
import ollama
import pytest
from herd import LoadedModel

from tests.conftest import emulated


def wait_for(condition, timeout: float = 20.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)


def chat(router, model: str = "llama3.2:3b", **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    return httpx.post(router.url + "/api/chat", json={**body, **extra}, timeout=30)


@pytest.fixture
def three(make_sim):
    a = make_sim(name="a", models=[emulated("llama3.2:3b"), emulated("shared:7b", 4)])
    b = make_sim(name="b", models=[emulated("qwen2.5:7b", 4), emulated("shared:7b", 4)])
    c = make_sim(name="c", models=[emulated("only-c:1b", 1), emulated("shared:7b", 4)])
    return a, b, c


def test_tags_are_merged_over_three_nodes(make_router, three) -> None:
    router = make_router(nodes=three)
    models = {m["model"]: m for m in ollama.Client(host=router.url).list()["models"]}
    assert set(models) == {"llama3.2:3b", "qwen2.5:7b", "only-c:1b", "shared:7b"}
    tags = {m["name"]: m for m in httpx.get(router.url + "/api/tags").json()["models"]}
    assert sorted(tags["shared:7b"]["nodes"]) == ["a", "b", "c"]
    assert tags["only-c:1b"]["nodes"] == ["c"]


def test_ps_lists_every_loaded_model_with_its_node(make_router, three) -> None:
    a, b, c = three
    for node, model in ((a, "llama3.2:3b"), (b, "qwen2.5:7b"), (c, "only-c:1b")):
        ollama.Client(host=node.url).generate(model=model, prompt="")
    router = make_router(nodes=three)
    loaded = {(m["name"], m["node"]) for m in httpx.get(router.url + "/api/ps").json()["models"]}
    assert loaded == {("llama3.2:3b", "a"), ("qwen2.5:7b", "b"), ("only-c:1b", "c")}
    assert ollama.Client(host=router.url).ps()["models"]


def test_request_goes_to_the_only_node_with_the_model(make_router, three) -> None:
    router = make_router(nodes=three)
    for _ in range(3):
        reply = chat(router, "only-c:1b")
        assert reply.status_code == 200
        assert reply.headers["x-herd-node"] == "c"
        assert reply.headers["x-herd-retries"] == "0"


def test_loaded_model_is_preferred(make_router, three) -> None:
    b = three[1]
    ollama.Client(host=b.url).generate(model="shared:7b", prompt="")
    router = make_router(nodes=three)
    assert chat(router, "shared:7b").headers["x-herd-node"] == "b"


def test_retry_moves_the_request_and_headers_name_the_node_that_answered(
    make_router, make_sim
) -> None:
    a = make_sim(name="a", models=[emulated("llama3.2:3b")])
    b = make_sim(name="b", models=[emulated("llama3.2:3b")])
    ollama.Client(host=a.url).generate(model="llama3.2:3b", prompt="")
    router = make_router(nodes=[a, b])
    httpx.post(a.url + "/_sim/fail", json={"count": 1, "status": 500})
    with httpx.stream(
        "POST",
        router.url + "/api/chat",
        json={"model": "llama3.2:3b", "messages": [{"role": "user", "content": "x"}]},
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["x-herd-node"] == "b"
        assert reply.headers["x-herd-retries"] == "1"
        body = reply.read()
    assert b'"done":true' in body


def test_connection_refused_moves_to_the_next_node(make_router, make_sim) -> None:
    b = make_sim(name="b", models=[emulated("llama3.2:3b")])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    router = make_router(nodes=[b])
    # a node that was online at the last poll and then vanished
    dead = router.call(_add_node(router, "dead", f"http://127.0.0.1:{dead_port}"))
    dead.view.status = "online"
    dead.view.models = dict(router.gateway.fleet.nodes["b"].view.models)
    # loaded there, so it ranks first
    dead.view.loaded = {"llama3.2:3b": LoadedModel(name="llama3.2:3b", key="llama3.2:3b")}
    reply = chat(router)
    assert reply.status_code == 200
    assert reply.headers["x-herd-node"] == "b"
    assert reply.headers["x-herd-retries"] == "1"
    assert router.gateway.fleet.nodes["dead"].view.status == "offline"


async def _add_node(router, name: str, url: str):
    from herd.settings import NodeConfig

    return router.gateway.fleet.add(NodeConfig(name=name, url=url))


def test_hang_before_first_byte_times_out_and_moves_on(make_router, make_sim) -> None:
    a = make_sim(name="a", models=[emulated("llama3.2:3b")])
    b = make_sim(name="b", models=[emulated("llama3.2:3b")])
    ollama.Client(host=a.url).generate(model="llama3.2:3b", prompt="")
    router = make_router(nodes=[a, b], routing={"first_byte_timeout": 0.5})
    httpx.post(a.url + "/_sim/hang", json={"count": 1, "seconds": 5})
    reply = chat(router)
    assert reply.status_code == 200
    assert reply.headers["x-herd-node"] == "b"


def test_client_disconnect_cancels_generation_on_the_node(make_router, make_sim) -> None:
    sim = make_sim(name="slow", models=[emulated("llama3.2:3b")], gen_tps=20, reply_tokens=2000)
    router = make_router(nodes=[sim])
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", router.url + "/api/chat", json=body, timeout=30) as reply:
        lines = reply.iter_lines()
        next(lines)
        next(lines)
    wait_for(lambda: httpx.get(sim.url + "/_sim/stats").json()["cancelled"] >= 1)
    stats = httpx.get(sim.url + "/_sim/stats").json()
    assert stats["active"] == 0
    wait_for(lambda: router.gateway.fleet.nodes["slow"].view.in_flight == 0)


def test_node_goes_offline_and_comes_back(make_router, make_sim) -> None:
    sim = make_sim(name="flaky", models=[emulated("llama3.2:3b")])
    router = make_router(nodes=[sim], fleet={"poll_interval": 0.2, "poll_timeout": 0.5})
    sim.stop()
    wait_for(lambda: router.gateway.fleet.nodes["flaky"].view.status == "offline")
    assert httpx.get(router.url + "/healthz").json()["nodes"]["offline"] == 1
    assert httpx.get(router.url + "/api/tags").json()["models"] == []
    sim.start()
    wait_for(lambda: router.gateway.fleet.nodes["flaky"].view.status == "online")
    assert chat(router).status_code == 200


def test_silent_node_is_marked_offline(make_router, make_sim) -> None:
    sim = make_sim(name="quiet", models=[emulated("llama3.2:3b")])
    router = make_router(nodes=[sim], fleet={"poll_interval": 0.2, "poll_timeout": 0.3})
    httpx.post(sim.url + "/_sim/silent", json={"seconds": 30})
    try:
        wait_for(lambda: router.gateway.fleet.nodes["quiet"].view.status == "offline")
    finally:
        httpx.post(sim.url + "/_sim/silent", json={"seconds": 0}, timeout=60)
