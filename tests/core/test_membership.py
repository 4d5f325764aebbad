"""Agents joining a real router over HTTP: registration, liveness, tokens, formats, merging."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import httpx
import ollama
import pytest
from aiohttp import web
from herd.protocol.heartbeat import GpuInfo, MachineInfo
from herd_node.runner import AgentHandle

from tests.conftest import GIB, emulated

# Liveness is not under test here: a slow CI machine must not degrade a node by accident.
PATIENT = {"fleet": {"degraded_after": 25, "offline_after": 50}}
MACHINE = MachineInfo(
    cpu_count=16,
    cpu_percent=12.5,
    ram_total=64 * GIB,
    ram_available=40 * GIB,
    ram_pressure=0.5,
    disk_free=500 * GIB,
    gpus=[GpuInfo(index=0, name="Test GPU", vram_total=24 * GIB, vram_used=6 * GIB)],
)


def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def make_agent():
    started: list[AgentHandle] = []

    def factory(router, sim, name: str, **settings) -> AgentHandle:
        settings.setdefault("interval", 0.2)
        agent = AgentHandle(router=router.url, ollama=sim.url, name=name, **settings)
        started.append(agent.start())
        return agent

    yield factory
    for agent in started:
        agent.kill()


def status_of(router, name: str) -> dict:
    nodes = httpx.get(router.url + "/fleet/status").json()["nodes"]
    return next(n for n in nodes if n["name"] == name)


def test_agent_registers_with_its_first_heartbeat(make_sim, make_router, make_agent) -> None:
    sim = make_sim(name="s1")
    router = make_router(**PATIENT)
    agent = make_agent(router, sim, "gpu-1", interval=3.0)
    records = router.gateway.fleet.membership.records
    # the record appears before its heartbeat is counted (the router's thread is mid-way)
    wait_for(lambda: "gpu-1" in records and records["gpu-1"].beats > 0, timeout=2.9)
    assert records["gpu-1"].beats == 1  # registered by the first heartbeat, within one interval
    view = router.gateway.fleet.nodes["gpu-1"]
    assert view.view.status == "online" and view.view.url == sim.url
    wait_for(lambda: agent.agent.registered_as == "gpu-1")
    reply = httpx.post(
        router.url + "/api/chat",
        json={"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 200 and reply.headers["x-herd-node"] == "gpu-1"


def test_resources_and_loaded_models_reach_the_view_and_status(
    make_sim, make_router, make_agent
) -> None:
    sim = make_sim(name="s1")
    ollama.Client(host=sim.url).generate(model="llama3.2:3b", prompt="")
    router = make_router(**PATIENT)
    make_agent(router, sim, "big", machine=MACHINE, num_parallel=3, max_loaded_models=2)
    nodes = router.gateway.fleet.nodes
    wait_for(lambda: "big" in nodes and "llama3.2:3b" in nodes["big"].view.loaded)
    view = nodes["big"].view
    assert view.agent and view.ram_available == 40 * GIB and view.ram_total == 64 * GIB
    assert view.vram_total == 24 * GIB and view.vram_used == 6 * GIB
    assert view.num_parallel == 3 and view.max_loaded_models == 2
    assert view.cpu_count == 16 and view.gpus[0]["name"] == "Test GPU"
    entry = status_of(router, "big")
    assert entry["state"] == "online" and entry["source"] == "agent"
    assert entry["resources"]["ram_available"] == 40 * GIB
    assert entry["resources"]["disk_free"] == 500 * GIB
    assert entry["resources"]["num_parallel_source"] == "agent"
    assert [m["name"] for m in entry["loaded"]] == ["llama3.2:3b"]
    assert entry["loaded"][0]["size_vram"] > 0
    assert {m["name"] for m in entry["models"]} >= {"llama3.2:3b", "qwen2.5:7b"}
    assert entry["heartbeat"]["interval"] == 0.2 and entry["heartbeat"]["live"]
    summary = httpx.get(router.url + "/fleet/status").json()["summary"]
    assert summary["online"] == 1 and summary["agents"] == 1 and summary["loaded"] == 1
    assert summary["vram_total"] == 24 * GIB
    # the router's own Ollama views show the agent's data too
    ps = httpx.get(router.url + "/api/ps").json()["models"]
    assert [(m["name"], m["node"]) for m in ps] == [("llama3.2:3b", "big")]


def test_killed_agent_makes_its_node_degraded_then_offline(
    make_sim, make_router, make_agent
) -> None:
    sim = make_sim(name="s1")
    router = make_router(fleet={"degraded_after": 3, "offline_after": 12})
    agent = make_agent(router, sim, "fragile")
    nodes = router.gateway.fleet.nodes
    wait_for(lambda: "fragile" in nodes and nodes["fragile"].view.status == "online")
    agent.kill()
    seen: list[str] = []

    def offline() -> bool:
        state = status_of(router, "fragile")["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        return state == "offline"

    wait_for(offline)
    assert seen[seen.index("degraded") :] == ["degraded", "offline"], seen
    entry = status_of(router, "fragile")
    assert "no heartbeat" in entry["last_error"] and entry["heartbeat"]["missed"] >= 12
    assert httpx.get(router.url + "/healthz").json()["nodes"]["offline"] == 1


def test_missing_or_wrong_token_gets_401_and_registers_nothing(
    make_sim, make_router, make_agent
) -> None:
    sim = make_sim(name="s1")
    router = make_router(auth={"node_token": "s3cret"}, **PATIENT)
    beat = {"name": "intruder", "ollama_url": sim.url}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        reply = httpx.post(router.url + "/fleet/heartbeat", json=beat, headers=headers)
        assert reply.status_code == 401, headers
        assert "token" in reply.json()["error"]
    wrong = make_agent(router, sim, "wrong", token="guess")
    right = make_agent(router, sim, "right", token="s3cret")
    wait_for(lambda: right.agent.registered_as == "right")
    wait_for(lambda: wrong.agent._last_problem)
    assert "401" in wrong.agent._last_problem
    assert set(router.gateway.fleet.nodes) == {"right"}
    assert set(router.gateway.fleet.membership.records) == {"right"}


def test_open_router_without_token_refuses_agents_and_says_why(
    make_sim, make_router, caplog: pytest.LogCaptureFixture
) -> None:
    sim = make_sim(name="s1")
    with caplog.at_level(logging.WARNING, logger="herd.membership"):
        router = make_router(host="0.0.0.0")  # the handle still binds 127.0.0.1 only
    assert any("agent registration is off" in r.getMessage() for r in caplog.records)
    reply = httpx.post(router.url + "/fleet/heartbeat", json={"name": "n", "ollama_url": sim.url})
    assert reply.status_code == 403 and "auth.node_token" in reply.json()["error"]
    assert router.gateway.fleet.nodes == {}
    assert httpx.get(router.url + "/fleet/status").json()["router"]["agents"] == "refused"


def test_older_and_newer_heartbeat_formats_are_accepted(make_sim, make_router) -> None:
    sim = make_sim(name="s1")
    router = make_router(**PATIENT)
    older = {  # what a first-generation agent sends: no version, digest, machine or loaded
        "name": "old-agent",
        "ollama_url": sim.url,
        "models": [{"name": "llama3.2:3b", "size": 2019393189, "details": {"family": "llama"}}],
    }
    reply = httpx.post(router.url + "/fleet/heartbeat", json=older)
    assert reply.status_code == 200 and reply.json()["node"] == "old-agent"
    newer = {**older, "name": "new-agent", "payload_version": 99, "quantum": {"qubits": 3}}
    assert httpx.post(router.url + "/fleet/heartbeat", json=newer).status_code == 200
    for name in ("old-agent", "new-agent"):
        entry = status_of(router, name)
        assert entry["state"] == "online"
        assert [m["name"] for m in entry["models"]] == ["llama3.2:3b"]
    assert status_of(router, "new-agent")["heartbeat"]["payload_version"] == 99
    tags = httpx.get(router.url + "/api/tags").json()["models"]
    assert sorted(tags[0]["nodes"]) == ["new-agent", "old-agent"]


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "http+unix://%2Frun%2Follama.sock/", "http://", "gopher://h:70"]
)
def test_heartbeat_with_a_non_http_ollama_url_is_refused(make_router, url: str) -> None:
    router = make_router(**PATIENT)
    reply = httpx.post(router.url + "/fleet/heartbeat", json={"name": "n", "ollama_url": url})
    assert reply.status_code == 400
    assert router.gateway.fleet.nodes == {}


def test_yaml_node_and_its_agent_are_one_node(make_sim, make_router, make_agent) -> None:
    sim = make_sim(name="s1")
    yaml_node = {"name": "studio", "url": sim.url, "num_parallel": 2, "tags": ["big"]}
    # with a node token: only a trusted agent may speak for a YAML node
    router = make_router(nodes=[yaml_node], auth={"node_token": "tok-1"}, **PATIENT)
    make_agent(router, sim, "studio-hostname", machine=MACHINE, num_parallel=8, token="tok-1")
    nodes = router.gateway.fleet.nodes
    wait_for(lambda: nodes["studio"].view.agent)
    assert set(nodes) == {"studio"}  # matched by URL; the YAML name wins
    view = nodes["studio"].view
    assert view.num_parallel == 2 and view.tags == ["big"]  # YAML's static options win
    assert view.ram_available == 40 * GIB  # the agent's richer data
    entry = status_of(router, "studio")
    assert entry["source"] == "yaml+agent"
    assert entry["resources"]["num_parallel_source"] == "yaml"
    assert router.gateway.fleet.membership.replaces_polling(nodes["studio"])


def test_new_model_metadata_reaches_the_router(make_sim, make_router, make_agent) -> None:
    sim = make_sim(name="s1", registry=[emulated("phi3:mini", 0.5)])
    router = make_router(**PATIENT)
    agent = make_agent(router, sim, "n1")
    nodes = router.gateway.fleet.nodes
    wait_for(lambda: "n1" in nodes and nodes["n1"].view.models)
    assert "phi3:mini" not in nodes["n1"].view.models
    ollama.Client(host=sim.url).pull("phi3:mini")
    wait_for(lambda: "phi3:mini" in nodes["n1"].view.models)
    # a router that lost the models list gets it again at the next heartbeat
    record = router.gateway.fleet.membership.records["n1"]

    async def forget() -> None:
        record.models_digest = ""
        nodes["n1"].view.models = {}

    router.call(forget())
    wait_for(lambda: "phi3:mini" in nodes["n1"].view.models)
    assert agent.agent.beats_sent > 2


def test_yaml_node_whose_agent_goes_quiet_is_polled_again(
    make_sim, make_router, make_agent
) -> None:
    sim = make_sim(name="s1")
    router = make_router(
        nodes=[{"name": "studio", "url": sim.url}],
        fleet={"degraded_after": 3, "offline_after": 6, "poll_interval": 0.2},
        auth={"node_token": "tok-1"},
    )
    agent = make_agent(router, sim, "studio", token="tok-1")
    node = router.gateway.fleet.nodes["studio"]
    membership = router.gateway.fleet.membership
    wait_for(lambda: membership.replaces_polling(node))
    agent.kill()
    wait_for(lambda: not membership.replaces_polling(node))
    seen = node.view.last_seen
    wait_for(lambda: node.view.last_seen > seen)  # a poll, not a heartbeat
    assert node.view.status == "online"
    assert status_of(router, "studio")["heartbeat"]["live"] is False


def test_model_too_big_for_agent_reported_memory_is_not_cold_loaded_there(
    make_sim, make_router, make_agent
) -> None:
    def gpu(total_gib: int, used_gib: int) -> MachineInfo:
        card = GpuInfo(vram_total=total_gib * GIB, vram_used=used_gib * GIB)
        return MachineInfo(ram_total=64 * GIB, ram_available=60 * GIB, gpus=[card])

    sims = {
        name: make_sim(name=name, models=[emulated("big:14b", 9)])
        for name in ("tiny", "crowded", "roomy")
    }
    router = make_router(**PATIENT)
    machines = {"tiny": gpu(8, 0), "crowded": gpu(24, 20), "roomy": gpu(24, 1)}
    for name, sim in sims.items():
        make_agent(router, sim, name, machine=machines[name])
    nodes = router.gateway.fleet.nodes
    wait_for(lambda: all(n in nodes and nodes[n].view.vram_total for n in sims))
    body = {"model": "big:14b", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    reply = httpx.post(router.url + "/api/chat", json=body, timeout=30)
    assert reply.status_code == 200 and reply.headers["x-herd-node"] == "roomy"
    assert sims["tiny"].stats()["loads"] == 0 and sims["crowded"].stats()["loads"] == 0
    assert sims["roomy"].stats()["loads"] == 1


def test_agent_reports_ollama_down_and_back(make_sim, make_router, make_agent) -> None:
    sim = make_sim(name="s1")
    router = make_router(**PATIENT)
    make_agent(router, sim, "n1", timeout=1.0)
    nodes = router.gateway.fleet.nodes
    wait_for(lambda: "n1" in nodes and nodes["n1"].view.status == "online")
    sim.stop()
    wait_for(lambda: nodes["n1"].view.status == "offline")
    assert "not answering" in status_of(router, "n1")["last_error"]
    sim.start()
    wait_for(lambda: nodes["n1"].view.status == "online")
    assert nodes["n1"].view.models


def test_router_never_follows_a_redirect_from_a_node(make_sim, make_router) -> None:
    target = make_sim(name="elsewhere")
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.path in ("/api/version", "/api/tags", "/api/ps"):
            async with httpx.AsyncClient() as client:
                real = await client.get(target.url + request.path)
            return web.Response(body=real.content, content_type="application/json")
        raise web.HTTPTemporaryRedirect(target.url + request.path)

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner

    holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["runner"] = loop.run_until_complete(serve())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    port = holder["runner"].addresses[0][1]
    try:
        router = make_router(nodes=[{"name": "sly", "url": f"http://127.0.0.1:{port}"}])
        body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "secret"}]}
        reply = httpx.post(router.url + "/api/chat", json=body, timeout=30)
        assert reply.status_code == 502 and "redirect" in reply.json()["error"]
        assert target.stats()["requests"].get("/api/chat", 0) == 0
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_heartbeat_advertises_node_services_and_bad_ones_are_ignored(make_sim, make_router) -> None:
    sim = make_sim(name="s1")
    router = make_router(**PATIENT)
    good = {
        "url": sim.url,
        "type": "openai-compat",
        "models": ["whisper-tiny.en"],
        "capabilities": ["transcribe"],
    }
    bad = {"url": "file:///etc/passwd", "models": ["x"], "capabilities": ["embed"]}
    beat = {"name": "ears", "ollama_url": sim.url, "services": [good, bad]}
    assert httpx.post(router.url + "/fleet/heartbeat", json=beat).status_code == 200
    node = router.gateway.fleet.nodes["ears"]
    assert [(s.config.url, s.config.models) for s in node.services] == [
        (sim.url, ["whisper-tiny.en"])
    ]
    # the same list again keeps the same service objects; an empty list drops them
    kept = node.services[0]
    httpx.post(router.url + "/fleet/heartbeat", json=beat)
    assert node.services[0] is kept
    httpx.post(router.url + "/fleet/heartbeat", json={**beat, "services": []})
    assert node.services == []
