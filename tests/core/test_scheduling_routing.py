"""Routing decisions end to end, over emulated nodes: who gets the request, and why."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import emulated
from tests.core.routing_helpers import MODEL, chat, load, long_stream, stats, turns

SLOW = {"gen_tps": 20, "reply_tokens": 400}  # a long stream keeps a slot for 20 s


def nodes_entry(*sims, num_parallel: int = 1, **fields):
    return [{"name": s.name, "url": s.url, "num_parallel": num_parallel, **fields} for s in sims]


def test_hot_model_on_a_busy_node_against_a_cold_one_on_an_idle_node(make_sim, make_router):
    a = make_sim(name="a", models=[emulated(MODEL)], **SLOW)
    b = make_sim(name="b", models=[emulated(MODEL)], **SLOW)
    load(a)
    router = make_router(nodes=nodes_entry(a, b))
    explained = httpx.get(router.url + "/fleet/explain", params={"model": MODEL}).json()
    assert [r["node"] for r in explained["ranked"]] == ["a", "b"]  # hot and idle wins
    with long_stream(router) as busy:
        assert busy.headers["x-herd-node"] == "a"
        # a's only slot is busy: a wait there (a whole generation, 8 s by the prior with
        # nothing learned yet) is longer than loading the 2 GB model on b
        reply = chat(router)
        assert reply.headers["x-herd-node"] == "b"
    assert stats(a)["max_concurrent"] == 1 and stats(b)["loads"] == 1


def test_a_model_too_big_for_one_node_goes_to_the_one_it_fits(make_sim, make_router):
    big = emulated("big:30b", 20)
    small = make_sim(name="small", models=[big], vram_bytes=8 * 1024**3)
    large = make_sim(name="large", models=[big], vram_bytes=48 * 1024**3)
    router = make_router(nodes=[small, large])

    async def report_memory():  # what each node's herd-node agent would report
        fleet = router.gateway.fleet
        fleet.nodes["small"].view.vram_total = 8 * 1024**3
        fleet.nodes["large"].view.vram_total = 48 * 1024**3

    router.call(report_memory())
    reply = chat(router, "big:30b")
    assert reply.status_code == 200 and reply.headers["x-herd-node"] == "large"
    explained = httpx.get(router.url + "/fleet/explain", params={"model": "big:30b"}).json()
    assert [r["node"] for r in explained["ranked"]] == ["large"]
    assert explained["rejected"]["small"].startswith("memory-fit: needs")
    assert stats(small)["loads"] == 0


def test_a_conversation_sticks_to_its_node_until_that_node_is_overloaded(make_sim, make_router):
    sims = [make_sim(name=n, models=[emulated(MODEL)], **SLOW) for n in "abc"]
    for sim in sims:
        load(sim)
    router = make_router(nodes=nodes_entry(*sims, num_parallel=2))
    with long_stream(router, messages=turns("someone else")) as other:
        assert other.headers["x-herd-node"] == "a"
        first = chat(router, messages=turns("plan a trip"))  # a is half busy: b
    home = first.headers["x-herd-node"]
    assert home == "b"
    conversation = ["plan a trip", "sure", "to Lisbon"]
    for _ in range(3):  # everyone idle again; config order would say a, the cache says b
        assert chat(router, messages=turns(*conversation)).headers["x-herd-node"] == home
    with (
        long_stream(router, messages=turns(*conversation)) as one,
        long_stream(router, messages=turns(*conversation)) as two,
    ):
        assert one.headers["x-herd-node"] == two.headers["x-herd-node"] == home  # still home
        moved = chat(router, messages=turns(*conversation))  # home saturated: move
        assert moved.status_code == 200 and moved.headers["x-herd-node"] != home


def test_a_large_context_avoids_the_node_whose_loaded_context_is_too_small(make_sim, make_router):
    short = make_sim(name="short", models=[emulated(MODEL)])
    roomy = make_sim(name="roomy", models=[emulated(MODEL)])
    load(short, num_ctx=2048)
    load(roomy, num_ctx=16384)
    router = make_router(nodes=[short, roomy])
    assert chat(router).headers["x-herd-node"] == "short"  # small requests: config order
    document = "word " * 6000  # ~7,500 tokens: more than 2048
    reply = chat(router, messages=[{"role": "user", "content": document}])
    assert reply.headers["x-herd-node"] == "roomy"
    assert stats(short)["reloads"] == 0 and stats(roomy)["reloads"] == 0


@pytest.mark.parametrize(("mode", "reloads"), [("pin", 0), ("passthrough", 1)])
def test_num_ctx_pinning_prevents_a_reload(make_sim, make_router, mode, reloads):
    sim = make_sim(name="a", models=[emulated(MODEL)])
    load(sim, num_ctx=8192)  # another client loaded it with a big context
    router = make_router(nodes=[sim], routing={"context_protection": mode})
    assert chat(router).status_code == 200  # no num_ctx: the node's default is 4096
    assert chat(router, options={"num_ctx": 2048, "num_predict": 2}).status_code == 200
    assert stats(sim)["reloads"] >= reloads
    if mode == "pin":
        assert stats(sim)["reloads"] == 0 and stats(sim)["loads"] == 1


def test_explain_shows_every_signal_and_rejection_without_sending(make_sim, make_router):
    a = make_sim(name="a", models=[emulated(MODEL)])
    b = make_sim(name="b", models=[emulated("other:1b")])
    load(a)
    router = make_router(nodes=[a, b])
    explained = httpx.get(
        router.url + "/fleet/explain", params={"model": MODEL, "tokens": 100}
    ).json()
    assert explained["model"] == MODEL and not explained["substituted"]
    [ranked] = explained["ranked"]
    assert ranked["node"] == "a" and 0 < ranked["score"] <= 1
    assert ranked["signals"]["thermal"] == 1.0 and len(ranked["signals"]) == 8
    assert ranked["queue"] == {"pending": 0, "in_flight": 0, "concurrency": 4}
    assert explained["rejected"] == {"b": "model not on this node"}
    assert explained["weights"]["thermal"] == 3.0
    assert stats(a)["requests"].get("/api/chat", 0) == 0
    assert httpx.get(router.url + "/fleet/explain").status_code == 400
