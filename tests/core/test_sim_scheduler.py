"""herd-sim: loading, VRAM and LRU eviction, num_ctx reloads, keep-alive, slots and the queue."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest
from herd.testing import EmulatedModel, SimConfig, SimNode, loaded_size_bytes

GB = 1_000_000_000


def small_model(name: str, gigabytes: float = 1.0) -> EmulatedModel:
    return EmulatedModel(name=name, size=int(gigabytes * GB), parameter_size="1B")


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


def load(node: SimNode, model: str, **body: object) -> httpx.Response:
    return httpx.post(node.url + "/api/generate", json={"model": model, **body}, timeout=30)


def loaded(node: SimNode) -> list[dict]:
    return httpx.get(node.url + "/api/ps").json()["models"]


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_the_least_recently_used_idle_model_is_evicted_when_vram_is_short(make_node) -> None:
    sim = make_node(
        models=[small_model("a"), small_model("b"), small_model("c")], vram_bytes=int(2.5 * GB)
    )
    load(sim, "a")
    load(sim, "b")
    load(sim, "a")  # a is now more recently used than b
    load(sim, "c")
    assert sorted(m["name"] for m in loaded(sim)) == ["a:latest", "c:latest"]
    stats = sim.stats()
    assert (stats["evictions"], stats["loads"]) == (1, 3)


def test_a_busy_model_is_never_evicted(make_node) -> None:
    sim = make_node(
        models=[small_model("a"), small_model("b"), small_model("c")],
        vram_bytes=int(2.5 * GB),
        gen_tps=50,
        reply_tokens=40,
    )
    load(sim, "b")
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(load, sim, "a", prompt="long answer", stream=False)
        wait_until(lambda: sim.stats()["active"] == 1)
        load(sim, "c")
        assert sorted(m["name"] for m in loaded(sim)) == ["a:latest", "c:latest"]
        assert busy.result().json()["done_reason"] == "stop"


def test_a_model_bigger_than_vram_loads_partially(make_node) -> None:
    sim = make_node(models=[small_model("big", 3.0)], vram_bytes=GB)
    load(sim, "big")
    (entry,) = loaded(sim)
    assert entry["size_vram"] == GB and entry["size"] > entry["size_vram"]


def test_the_load_delay_shows_in_load_duration(make_node) -> None:
    sim = make_node(models=[small_model("a", 0.5)], load_seconds_per_gb=0.4)
    first = load(sim, "a", prompt="x", stream=False).json()
    assert first["load_duration"] >= 0.19e9
    second = load(sim, "a", prompt="x", stream=False).json()
    assert second["load_duration"] < first["load_duration"]


def test_a_different_num_ctx_reloads_the_model_with_a_bigger_footprint(make_node) -> None:
    model = small_model("a")
    sim = make_node(models=[model])
    load(sim, "a", prompt="x", stream=False)
    (before,) = loaded(sim)
    load(sim, "a", prompt="x", stream=False, options={"num_ctx": 8192})
    (after,) = loaded(sim)
    assert (before["context_length"], after["context_length"]) == (4096, 8192)
    assert after["size"] == loaded_size_bytes(model, 8192) > before["size"]
    stats = sim.stats()
    assert (stats["loads"], stats["unloads"]) == (2, 1)


def test_num_ctx_is_capped_at_the_models_context_length(make_node) -> None:
    sim = make_node(models=[EmulatedModel(name="short", size=GB, context_length=2048)])
    load(sim, "short", options={"num_ctx": 100_000})
    assert loaded(sim)[0]["context_length"] == 2048


def test_keep_alive_expiry_unloads_an_idle_model(make_node) -> None:
    sim = make_node(models=[small_model("a")])
    load(sim, "a", keep_alive=0.3)
    assert len(loaded(sim)) == 1
    wait_until(lambda: loaded(sim) == [])
    assert sim.stats()["unloads"] == 1


def test_keep_alive_zero_unloads_right_after_the_request(make_node) -> None:
    sim = make_node(models=[small_model("a")])
    body = load(sim, "a", prompt="x", stream=False, keep_alive="0").json()
    assert body["done_reason"] == "stop" and loaded(sim) == []


def test_ps_sorts_by_expiry_and_negative_keep_alive_is_forever(make_node) -> None:
    sim = make_node(models=[small_model("a"), small_model("b")])
    load(sim, "a", keep_alive="1m")
    load(sim, "b", keep_alive=-1)
    first, second = loaded(sim)
    assert (first["name"], second["name"]) == ("b:latest", "a:latest")
    assert datetime.fromisoformat(first["expires_at"]).year > datetime.now().year + 100


def test_parallel_requests_never_exceed_num_parallel_per_model(make_node) -> None:
    sim = make_node(models=[small_model("a")], num_parallel=2, gen_tps=100, reply_tokens=8)
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda i: load(sim, "a", prompt=f"q{i}", stream=False), range(6)))
    assert all(reply.json()["done_reason"] == "stop" for reply in replies)
    stats = sim.stats()
    assert stats["max_concurrent_by_model"] == {"a:latest": 2}
    assert stats["completed"] == 6 and stats["active"] == 0


def test_requests_beyond_max_queue_get_503(make_node) -> None:
    sim = make_node(
        models=[small_model("a")], num_parallel=1, max_queue=2, gen_tps=20, reply_tokens=400
    )
    body = {"model": "a", "prompt": "long", "stream": True}
    with ThreadPoolExecutor(3) as pool:
        streams = [pool.submit(_drain, sim.url, body) for _ in range(3)]
        wait_until(lambda: sim.stats()["queued"] == 2 and sim.stats()["active"] == 1)
        busy = httpx.post(sim.url + "/api/generate", json=body)
        assert busy.status_code == 503
        assert busy.json() == {
            "error": "server busy, please try again.  maximum pending requests exceeded"
        }
        sim.stop()  # cuts the long streams
        for future in streams:
            future.result()


def _drain(url: str, body: dict) -> None:
    try:
        with httpx.stream("POST", url + "/api/generate", json=body, timeout=30) as response:
            for _ in response.iter_lines():
                pass
    except httpx.HTTPError:
        pass
