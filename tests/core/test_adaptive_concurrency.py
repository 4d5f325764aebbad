"""An untold node's concurrency is learned from its latency, through a real router."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import emulated
from tests.core.routing_helpers import queue_row

MODEL = "qwen2.5:7b"


async def _wave(url: str, count: int) -> list[int]:
    body = {"model": MODEL, "prompt": "go", "options": {"num_predict": 32}}
    async with httpx.AsyncClient(timeout=60) as client:

        async def one() -> int:
            async with client.stream("POST", url + "/api/generate", json=body) as reply:
                async for _ in reply.aiter_lines():
                    pass
                return reply.status_code

        return await asyncio.gather(*(one() for _ in range(count)))


def test_the_learned_limit_rises_above_the_start_on_a_wide_node(make_sim, make_router):
    sim = make_sim(name="wide", models=[emulated(MODEL)], num_parallel=64, gen_tps=200)
    router = make_router(nodes=[{"name": "wide", "url": sim.url}])  # no num_parallel
    learned = 0
    for _ in range(30):  # bounded: 30 waves of 32 streams at most
        assert asyncio.run(_wave(router.url, 32)) == [200] * 32
        row = queue_row(router, "wide", MODEL)
        if row.get("concurrency_source") == "learned":
            learned = row["concurrency"]
            if learned > 4:
                break
    assert learned > 4  # started from routing.default_num_parallel (4)


def test_an_untold_single_slot_node_is_not_piled_on(make_sim, make_router):
    sim = make_sim(name="one", models=[emulated(MODEL)], num_parallel=1, gen_tps=100)
    router = make_router(nodes=[{"name": "one", "url": sim.url}])
    for _ in range(4):
        assert asyncio.run(_wave(router.url, 8)) == [200] * 8
    row = queue_row(router, "one", MODEL)
    assert row["concurrency_source"] == "learned" and row["concurrency"] <= 2
