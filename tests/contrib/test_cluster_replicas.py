"""Three router replicas, one real redis-server, emulated nodes: what cluster mode promises.

The emulated node serves 8 at once, while the routers are told ``num_parallel: 2``: the
node's own counter (``max_concurrent``) then shows exactly what the routers sent it.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import emulated
from tests.contrib.cluster_load import MODEL, RouterProcess, StreamResult, chat_stream, streams_over
from tests.contrib.redis_server import free_port

pytestmark = pytest.mark.redis

pytest.importorskip("redis")

PACED = {"gen_tps": 100.0, "reply_tokens": 12, "num_parallel": 8}  # ~0.12 s per stream


def node(sim, num_parallel: int = 2) -> dict:
    return {"name": sim.name, "url": sim.url, "num_parallel": num_parallel}


def cluster(server, ttl: float = 10.0) -> dict:
    return {"redis_url": server.url, "lease_ttl_s": ttl, "key_prefix": f"t{server.port}:"}


def replicas(make_router, sims, count: int = 3, **settings) -> list:
    settings.setdefault("routing", {}).setdefault("max_queue_depth", 64)
    return [make_router(nodes=[node(s) for s in sims], **settings) for _ in range(count)]


def wait_for(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def health(router) -> dict:
    return httpx.get(router.url + "/healthz", timeout=5).json()


def test_three_replicas_never_send_a_node_more_than_its_slots(
    make_sim,
    make_router,
    redis_server,
) -> None:
    sim = make_sim(name="gpu", **PACED)
    routers = replicas(make_router, [sim], cluster=cluster(redis_server))
    results = asyncio.run(streams_over([r.url for r in routers], 30))
    assert [r.error for r in results if not r.done] == []
    assert all(r.status == 200 for r in results)
    stats = sim.stats()
    assert stats["completed"] == 30
    assert stats["max_concurrent"] == 2  # full use of the node, never more
    assert {health(r)["cluster"]["state"] for r in routers} == {"shared"}
    assert health(routers[0])["cluster"]["replicas"] == 3


def test_without_the_cluster_three_routers_overload_the_node(make_sim, make_router) -> None:
    """The control: the same load on three lone routers exceeds the node's two slots."""
    sim = make_sim(name="gpu", **PACED)
    routers = replicas(make_router, [sim])
    results = asyncio.run(streams_over([r.url for r in routers], 30))
    assert all(r.done for r in results)
    assert sim.stats()["max_concurrent"] > 2


def test_a_settings_change_on_one_replica_routes_differently_on_another(
    make_sim,
    make_router,
    redis_server,
) -> None:
    sim = make_sim(name="gpu", models=[emulated(MODEL)], registry=[emulated("phi3:mini", 0.5)])
    first, _, third = replicas(make_router, [sim], cluster=cluster(redis_server))
    ask = {"model": "phi3:mini", "prompt": "hi", "stream": False}
    assert httpx.post(third.url + "/api/generate", json=ask, timeout=30).status_code == 404
    changed = httpx.post(
        first.url + "/dashboard/api/settings", json={"auto_pull": True}, timeout=10
    )
    assert changed.status_code == 200
    started = time.monotonic()
    wait_for(lambda: third.gateway.settings.routing.auto_pull, what="the change on replica 3")
    print(f"replica 3 applied the change after {time.monotonic() - started:.3f} s")
    reply = httpx.post(third.url + "/api/generate", json=ask, timeout=60)
    assert reply.status_code == 200 and reply.json()["done"]  # pulled, then served


def test_a_killed_replica_fails_its_streams_and_its_slots_come_back(
    make_sim,
    make_router,
    redis_server,
    tmp_path,
) -> None:
    sim = make_sim(name="gpu", gen_tps=10.0, reply_tokens=30, num_parallel=8)  # ~3 s streams
    shared = cluster(redis_server, ttl=1.5)
    victim = RouterProcess(
        {"nodes": [node(sim)], "cluster": shared, "fleet": {"discover_local": False}},
        tmp_path,
        free_port(),
    ).launch()
    try:
        others = replicas(make_router, [sim], count=2, cluster=shared)  # while it boots
        victim.ready()

        async def scenario() -> tuple[list[StreamResult], list[StreamResult]]:
            async with httpx.AsyncClient(timeout=60) as client:
                doomed = [StreamResult(), StreamResult()]
                doomed_jobs = [
                    asyncio.create_task(chat_stream(client, victim.url, r)) for r in doomed
                ]
                for result in doomed:  # the victim holds both slots of the node
                    await asyncio.wait_for(result.started.wait(), 30)
                survivors = [StreamResult() for _ in range(4)]
                jobs = [
                    asyncio.create_task(chat_stream(client, others[i % 2].url, r, tokens=3))
                    for i, r in enumerate(survivors)
                ]
                await asyncio.sleep(0.5)  # they wait in the shared queue
                assert not any(r.started.is_set() for r in survivors)
                status = (await client.get(others[0].url + "/fleet/status")).json()
                assert status["queues"]["gpu"][MODEL]["pending"] == 2  # its half of them
                victim.kill()
                killed_at = time.monotonic()
                await asyncio.wait(
                    [asyncio.create_task(r.started.wait()) for r in survivors],
                    return_when=asyncio.FIRST_COMPLETED,
                    timeout=30,
                )
                print(f"slots came back {time.monotonic() - killed_at:.2f} s after the kill")
                await asyncio.gather(*doomed_jobs, *jobs)
                return doomed, survivors

        doomed, survivors = asyncio.run(scenario())
    finally:
        victim.kill()
    assert not any(r.done for r in doomed)  # the killed replica's clients see it fail
    assert [r.error for r in survivors if not r.done] == []
    assert all(r.status == 200 for r in survivors)
    # Nothing leaked: once everything ended, the node's two slots are free again.
    reply = httpx.post(
        others[0].url + "/api/generate",
        json={"model": MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 1}},
        timeout=30,
    )
    assert reply.status_code == 200


def test_redis_restarted_mid_load_loses_no_request(
    make_sim,
    make_router,
    redis_server,
) -> None:
    sim = make_sim(name="gpu", **PACED)
    routers = replicas(
        make_router, [sim], cluster={**cluster(redis_server), "timeout_s": 0.3, "retry_s": 0.2}
    )

    async def scenario() -> list[StreamResult]:
        load = asyncio.create_task(streams_over([r.url for r in routers], 30))
        await asyncio.sleep(0.6)  # some streams run, most wait in the shared queue
        redis_server.stop()
        await asyncio.to_thread(
            wait_for, lambda: health(routers[0])["cluster"]["state"] == "degraded"
        )
        redis_server.start()
        return await load

    results = asyncio.run(scenario())
    assert [r.error or r.status for r in results if not r.done] == []
    assert sim.stats()["completed"] == 30
    for router in routers:  # each rejoins once Redis answers again
        wait_for(lambda r=router: health(r)["cluster"]["state"] == "shared", what="rejoin")
    assert health(routers[0])["cluster"]["outages"] >= 1
    assert "herd_cluster_outages_total 1" in httpx.get(routers[0].url + "/metrics").text
    # The restarted Redis lost the replica list: each replica re-registers on its next beat.
    wait_for(
        lambda: "herd_cluster_replicas 3" in httpx.get(routers[0].url + "/metrics").text,
        what="the replicas to re-register",
    )
    assert "herd_cluster_degraded 0" in httpx.get(routers[0].url + "/metrics").text
