"""A prompt longer than every context: routed where it fits, else its truncation is said."""

from __future__ import annotations

import httpx

from tests.conftest import emulated
from tests.core.routing_helpers import load, wait_for

MODEL = "qwen2.5:7b"
LONG = "please explain this at length " * 1000  # about 7,500 tokens


def _chat(router, **options):
    body = {"model": MODEL, "messages": [{"role": "user", "content": LONG}], "stream": False}
    if options:
        body["options"] = options
    return httpx.post(router.url + "/api/chat", json=body, timeout=60)


def test_a_truncated_prompt_gets_a_header_and_a_trace_note(make_sim, make_router):
    sim = make_sim(name="a", models=[emulated(MODEL)])
    router = make_router(nodes=[sim])
    seen = []
    router.gateway.sinks.append(type("Probe", (), {"submit": lambda self, t: seen.append(t)})())
    reply = _chat(router)
    assert reply.status_code == 200
    header = reply.headers["x-herd-context"]
    assert header.startswith("truncated; prompt ~") and header.endswith("> num_ctx 4096")
    wait_for(lambda: seen)
    assert any("the node truncates it" in note for note in seen[0].notes)
    # a context that holds it: no header
    assert "x-herd-context" not in _chat(router, num_ctx=16384).headers


def test_a_long_prompt_goes_to_the_node_whose_loaded_context_holds_it(make_sim, make_router):
    small = make_sim(name="small", models=[emulated(MODEL)])
    wide = make_sim(name="wide", models=[emulated(MODEL)])
    load(small, MODEL, num_ctx=4096)
    load(wide, MODEL, num_ctx=16384)
    router = make_router(nodes=[small, wide])
    wait_for(lambda: all(v.loaded for v in router.gateway.fleet.views()))
    reply = _chat(router)
    assert reply.status_code == 200
    assert reply.headers["x-herd-node"] == "wide" and "x-herd-context" not in reply.headers
