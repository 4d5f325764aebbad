"""Which model is served: VRAM fallback, the client's fallback list, auto-pull, keep-alive."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import emulated
from tests.core.routing_helpers import chat, load, stats, wait_for

GENERAL = "llama3.1:8b"
BIG = "qwen2.5:32b"  # general too: the fallback's own category
VISION = "llava:34b"
IMAGE = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/"
    "PchI7wAAAABJRU5ErkJggg=="
)


def fallback_fleet(make_sim, make_router, **routing):
    sim = make_sim(
        name="a",
        models=[
            emulated(BIG, 12),
            emulated(GENERAL, 4.5),
            emulated(VISION, 12, ("completion", "vision")),
        ],
        vram_bytes=32 * 1024**3,
    )
    load(sim, GENERAL)
    routing = {"vram_fallback": True, "fallback_options": {"min_cold_start_s": 5}, **routing}
    return sim, make_router(nodes=[sim], routing=routing)


def test_vram_fallback_serves_a_loaded_model_of_the_same_category_and_says_so(
    make_sim, make_router
):
    sim, router = fallback_fleet(make_sim, make_router)
    seen = []
    router.gateway.sinks.append(type("Probe", (), {"submit": lambda self, t: seen.append(t)})())
    reply = chat(router, BIG)
    assert reply.status_code == 200
    assert reply.headers["x-herd-model"] == GENERAL
    assert reply.json()["model"] == GENERAL  # the body says so too, never pretending
    wait_for(lambda: seen)
    assert seen[0].model == BIG and seen[0].served_model == GENERAL
    assert any("served llama3.1:8b instead of qwen2.5:32b" in note for note in seen[0].notes)
    assert stats(sim)["loads"] == 1  # no cold load of the 12 GB model


def test_the_client_can_forbid_the_fallback(make_sim, make_router):
    sim, router = fallback_fleet(make_sim, make_router)
    reply = chat(router, BIG, headers={"X-Herd-No-Fallback": "1"})
    assert reply.status_code == 200 and reply.headers["x-herd-model"] == BIG
    assert stats(sim)["loads"] == 2


def test_an_image_request_never_falls_back_to_a_model_without_vision(make_sim, make_router):
    # even when the client lists one and YAML files the loaded model under "vision"
    options = {"min_cold_start_s": 5, "categories": {GENERAL: "vision"}}
    sim, router = fallback_fleet(make_sim, make_router, fallback_options=options)
    text_only = chat(router, VISION, fallback_models=[GENERAL])
    assert text_only.headers["x-herd-model"] == GENERAL  # without an image it may
    messages = [{"role": "user", "content": "what is this?", "images": [IMAGE]}]
    reply = chat(router, VISION, messages=messages, fallback_models=[GENERAL])
    assert reply.status_code == 200 and reply.headers["x-herd-model"] == VISION
    assert stats(sim)["loads"] == 2


def test_the_clients_own_fallback_list_is_honoured_first(make_sim, make_router):
    _, router = fallback_fleet(make_sim, make_router, vram_fallback=False)
    assert chat(router, BIG, fallback_models=[GENERAL]).headers["x-herd-model"] == GENERAL
    assert chat(router, "nowhere:1b", fallback_models=[GENERAL]).status_code == 200


def test_auto_pull_fetches_a_known_model_once_for_concurrent_requests(make_sim, make_router):
    sim = make_sim(
        name="a",
        models=[emulated("llama3.2:3b")],
        registry=[emulated("phi3:mini", 0.5)],
        pull_seconds_per_gb=1.0,
    )
    router = make_router(nodes=[sim], routing={"auto_pull": True})
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda _: chat(router, "phi3:mini"), range(3)))
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert all(r.headers["x-herd-node"] == "a" for r in replies)
    assert stats(sim)["requests"]["/api/pull"] == 1


def test_auto_pull_of_an_unknown_model_fails_fast_with_404(make_sim, make_router):
    sim = make_sim(name="a", models=[emulated("llama3.2:3b")])
    router = make_router(nodes=[sim], routing={"auto_pull": True})
    started = time.monotonic()
    reply = chat(router, "no-such-model:7b")
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert "model 'no-such-model:7b' not found" in error and "auto-pull on node a failed" in error
    assert time.monotonic() - started < 10


def test_without_auto_pull_an_unknown_model_is_a_plain_404(make_sim, make_router):
    sim = make_sim(name="a", models=[emulated("llama3.2:3b")], registry=[emulated("phi3:mini")])
    router = make_router(nodes=[sim])
    assert chat(router, "phi3:mini").json() == {"error": "model 'phi3:mini' not found"}
    assert stats(sim)["requests"].get("/api/pull", 0) == 0


def test_keep_alive_defaults_per_model_and_the_clients_own_value_wins(make_sim, make_router):
    sim = make_sim(name="a", models=[emulated("llama3.2:3b"), emulated("qwen2.5:7b", 4)])
    router = make_router(nodes=[sim], routing={"keep_alive": {"llama3.2:3b": 0}})
    assert chat(router, "llama3.2:3b").status_code == 200  # YAML: unload right after
    wait_for(lambda: stats(sim)["unloads"] == 1)
    assert chat(router, "llama3.2:3b", keep_alive="10m").status_code == 200
    assert chat(router, "qwen2.5:7b").status_code == 200  # no default for it
    loaded = {m["name"] for m in httpx.get(sim.url + "/api/ps").json()["models"]}
    assert loaded == {"llama3.2:3b", "qwen2.5:7b"} and stats(sim)["unloads"] == 1
