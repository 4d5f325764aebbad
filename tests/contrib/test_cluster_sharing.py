"""What replicas share besides slots: drains, agents, session homes, polling, client caps,
and how they split a node's slots while Redis is away."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest
from herd._engine.cluster import state_store_for
from herd._engine.plugins import PluginLoadError, make_plugin_manager
from herd.settings import ClusterSettings

from tests.contrib.cluster_load import MODEL, StreamResult, chat_stream, streams_over
from tests.contrib.test_cluster_replicas import PACED, cluster, health, node, wait_for

pytestmark = pytest.mark.redis

pytest.importorskip("redis")


def routers_for(make_router, sims, count: int, **settings) -> list:
    return [make_router(nodes=[node(s) for s in sims], **settings) for _ in range(count)]


def test_drains_reach_every_replica_even_one_started_later(
    make_sim, make_router, redis_server
) -> None:
    sim = make_sim(name="gpu")
    first, second = routers_for(make_router, [sim], 2, cluster=cluster(redis_server))
    assert httpx.post(first.url + "/fleet/nodes/gpu/drain").status_code == 200
    wait_for(lambda: second.gateway.fleet.nodes["gpu"].view.draining, what="the drain")
    late = make_router(nodes=[node(sim)], cluster=cluster(redis_server))
    assert late.gateway.fleet.nodes["gpu"].view.draining
    reply = httpx.post(late.url + "/api/generate", json={"model": MODEL, "prompt": "hi"})
    assert reply.status_code == 503 and "draining" in reply.json()["error"]

    async def undrain() -> None:  # the public Router call shares it too
        first.gateway.set_draining("gpu", False)

    first.call(undrain())
    wait_for(lambda: not late.gateway.fleet.nodes["gpu"].view.draining, what="the undrain")


def test_an_agent_heard_by_one_replica_is_seen_by_all(make_sim, make_router, redis_server) -> None:
    sim = make_sim(name="box")
    first, second = routers_for(make_router, [], 2, cluster=cluster(redis_server))
    beat = {"name": "box", "ollama_url": sim.url, "interval": 5}
    assert httpx.post(first.url + "/fleet/heartbeat", json=beat).status_code == 200
    wait_for(lambda: "box" in second.gateway.fleet.nodes, what="the relayed heartbeat")
    assert second.gateway.fleet.nodes["box"].view.url == sim.url
    nodes = httpx.get(second.url + "/fleet/status").json()["nodes"]
    assert [n["name"] for n in nodes] == ["box"]


def test_a_session_home_learned_on_one_replica_routes_on_another(
    make_sim, make_router, redis_server
) -> None:
    sims = [make_sim(name="a"), make_sim(name="b")]
    first, second = routers_for(make_router, sims, 2, cluster=cluster(redis_server))
    ask = {"model": MODEL, "prompt": "hi", "stream": False}
    tagged = {"X-Herd-Tags": "session:42"}
    home = httpx.post(first.url + "/api/generate", json=ask, headers=tagged).headers
    home = home["x-herd-node"]
    session = next(s for s in second.gateway.signals if s.name == "session-affinity")
    wait_for(lambda: session.home_of("session:42") == home, what="the session's home")
    for _ in range(3):
        reply = httpx.post(second.url + "/api/generate", json=ask, headers=tagged)
        assert reply.headers["x-herd-node"] == home


def test_one_replica_polls_the_nodes_and_the_others_learn_from_it(
    make_sim, make_router, redis_server
) -> None:
    sim = make_sim(name="gpu")
    routers = routers_for(
        make_router,
        [sim],
        3,
        cluster=cluster(redis_server, ttl=1.5),
        fleet={"discover_local": False, "poll_interval": 0.2},
    )
    wait_for(lambda: [health(r)["cluster"]["poller"] for r in routers].count(True) == 1)
    sim.stop()  # only the poller notices, and tells the others
    for router in routers:
        view = router.gateway.fleet.nodes["gpu"].view
        wait_for(lambda v=view: v.status == "offline", what="the poll result")


def test_the_client_cap_holds_across_replicas(make_sim, make_router, redis_server) -> None:
    sim = make_sim(name="gpu", gen_tps=10.0, reply_tokens=20, num_parallel=8)
    first, second = routers_for(
        make_router,
        [sim],
        2,
        cluster=cluster(redis_server),
        routing={"max_in_flight_per_client": 1},
    )

    async def scenario() -> tuple[StreamResult, httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            running = StreamResult()
            job = asyncio.create_task(chat_stream(client, first.url, running))
            await asyncio.wait_for(running.started.wait(), 30)
            refused = await client.post(
                second.url + "/api/generate", json={"model": MODEL, "prompt": "hi"}
            )
            return await job, refused

    running, refused = asyncio.run(scenario())
    assert running.done
    assert refused.status_code == 429 and "across the routers" in refused.json()["error"]


def test_without_redis_each_replica_takes_its_share_of_the_slots(
    make_sim, make_router, redis_server
) -> None:
    sim = make_sim(name="gpu", **PACED)
    settings = {**cluster(redis_server, ttl=1.5), "timeout_s": 0.3, "retry_s": 0.2}
    routers = [
        make_router(nodes=[node(sim, num_parallel=4)], cluster=settings, routing={})
        for _ in range(2)
    ]
    for router in routers:
        wait_for(lambda r=router: health(r)["cluster"]["replicas"] == 2, what="2 replicas")
    redis_server.stop()
    for router in routers:  # a request or the next maintenance finds out
        wait_for(lambda r=router: health(r)["cluster"]["state"] == "degraded")
    status = httpx.get(routers[0].url + "/fleet/status").json()
    assert status["cluster"]["state"] == "degraded"
    results = asyncio.run(streams_over([r.url for r in routers], 16))
    assert all(r.done for r in results)
    assert sim.stats()["max_concurrent"] <= 4  # 2 + 2: each its half


def test_a_url_no_store_serves_is_a_clear_error() -> None:
    with pytest.raises(PluginLoadError, match=r"no state store serves 'etcd'.*redis"):
        state_store_for(make_plugin_manager(), ClusterSettings(redis_url="etcd://10.0.0.9"))


def test_without_the_redis_client_the_error_says_what_to_install(monkeypatch) -> None:
    for name in [m for m in sys.modules if m == "redis" or m.startswith("herd_contrib.cluster")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(PluginLoadError, match=r"herd-gateway\[cluster\]"):
        state_store_for(make_plugin_manager(), ClusterSettings(redis_url="redis://127.0.0.1:1"))


def test_alone_no_cluster_code_is_loaded_or_called(make_sim, tmp_path) -> None:
    """Without cluster.redis_url a router serves requests without importing the store."""
    sim = make_sim(name="gpu")
    script = f"""
import sys, httpx
from herd.testing.router_runner import RouterHandle
with RouterHandle(nodes=[{{"name": "gpu", "url": "{sim.url}"}}]) as router:
    reply = httpx.post(router.url + "/api/generate", json={{"model": "{MODEL}", "prompt": "hi"}})
    assert reply.status_code == 200, reply.text
    assert router.gateway.cluster is None
    assert router.gateway.scheduler.board.admission is None
loaded = [m for m in sys.modules if m == "redis" or m.startswith("herd_contrib.cluster")]
print("loaded:", loaded)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout


def test_the_settings_view_hides_the_redis_password(make_router, redis_server) -> None:
    url = redis_server.url.replace("redis://", "redis://:hunter2secret@")
    # A password the server does not ask for is refused: the replica starts degraded.
    router = make_router(cluster={"redis_url": url, "timeout_s": 0.3})
    view = httpx.get(router.url + "/dashboard/api/settings").text
    assert "hunter2secret" not in view and "redis://:********@127.0.0.1" in view
    assert health(router)["cluster"]["state"] in ("shared", "degraded")


def test_a_first_request_that_finds_its_node_busy_goes_to_a_free_one(
    make_sim, make_router, redis_server
) -> None:
    sims = {n: make_sim(name=n, gen_tps=10.0, reply_tokens=40, num_parallel=4) for n in "ab"}
    nodes = [node(s, num_parallel=1) for s in sims.values()]
    first, second = (make_router(nodes=nodes, cluster=cluster(redis_server)) for _ in range(2))
    short = {"model": MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 1}}

    async def scenario() -> list[tuple[str, str, bool]]:
        async with httpx.AsyncClient(timeout=60) as client:
            outcomes = []
            for _ in range(2):  # whichever node the first replica's stream takes
                long = StreamResult()
                holder = asyncio.create_task(chat_stream(client, first.url, long))
                await asyncio.wait_for(long.started.wait(), 30)
                busy = next(n for n, s in sims.items() if s.stats()["active"])
                reply = await client.post(second.url + "/api/generate", json=short)
                outcomes.append((busy, reply.headers["x-herd-node"], not holder.done()))
                holder.cancel()
                await asyncio.gather(holder, return_exceptions=True)
                await asyncio.sleep(1.5)  # the cancelled stream's slot and figures clear
            return outcomes

    for busy, served_by, still_running in asyncio.run(scenario()):
        assert still_running and served_by != busy
