"""Model operations go through Backend methods; a node that cannot do one says so (400)."""

from __future__ import annotations

import httpx
import ollama
import pytest
from herd.protocol.ollama import ChatRequest, GenerateRequest, Message, is_unload
from herd_services import ServicesConfig, ServicesHandle

from tests.conftest import emulated
from tests.plugins.test_backend_openai_compat import LengthEmbedder


def test_a_node_that_cannot_manage_models_refuses_with_a_clear_400(make_router) -> None:
    handle = ServicesHandle([LengthEmbedder("minilm")], ServicesConfig(port=0)).start()
    try:
        router = make_router(nodes=[{"name": "box", "type": "openai-compat", "url": handle.url}])
        body = {"model": "minilm", "node": "box"}
        reply = httpx.request("DELETE", router.url + "/api/delete", json=body, timeout=30)
        assert reply.status_code == 400
        assert "cannot delete models" in reply.json()["error"]
        copy = {"source": "minilm", "destination": "other", "node": "box"}
        reply = httpx.post(router.url + "/api/copy", json=copy, timeout=30)
        assert reply.status_code == 400 and "cannot copy models" in reply.json()["error"]
    finally:
        handle.stop()


def test_delete_and_copy_reach_an_ollama_node_through_the_backend(make_sim, make_router) -> None:
    sim = make_sim(name="a", models=[emulated("llama3.2:3b")])
    router = make_router(nodes=[sim])
    copy = {"source": "llama3.2:3b", "destination": "mine:1b", "node": "a"}
    assert httpx.post(router.url + "/api/copy", json=copy, timeout=30).status_code == 200
    names = {m["name"] for m in httpx.get(router.url + "/api/tags", timeout=30).json()["models"]}
    assert "mine:1b" in names
    body = {"model": "mine:1b", "node": "a"}
    reply = httpx.request("DELETE", router.url + "/api/delete", json=body, timeout=30)
    assert reply.status_code == 200
    names = {m["name"] for m in httpx.get(router.url + "/api/tags", timeout=30).json()["models"]}
    assert "mine:1b" not in names


def test_show_asks_a_node_that_has_the_model_through_the_backend(make_sim, make_router) -> None:
    first = make_sim(name="a", models=[emulated("llama3.2:3b")])
    second = make_sim(name="b", models=[emulated("qwen3:4b")])
    router = make_router(nodes=[first, second])
    reply = httpx.post(router.url + "/api/show", json={"model": "qwen3:4b"}, timeout=30)
    assert reply.status_code == 200 and reply.headers["x-herd-node"] == "b"
    assert reply.json()["details"]["family"]
    missing = httpx.post(router.url + "/api/show", json={"model": "ghost:1b"}, timeout=30)
    assert missing.status_code == 404 and "ghost:1b" in missing.json()["error"]
    empty = httpx.post(router.url + "/api/show", json={}, timeout=30)
    assert empty.status_code == 400


@pytest.mark.parametrize("endpoint", ["generate", "chat"])
def test_an_unload_request_empties_every_node_that_holds_the_model(
    make_sim, make_router, endpoint: str
) -> None:
    """``ollama stop`` (an empty request with a zero keep_alive) is about the one endpoint
    herd is: the model leaves the memory of every node that holds it, not of one, and
    ``/api/ps`` says so at once. A load (any other keep_alive) still goes to one node."""
    sims = [make_sim(name=name, models=[emulated("llama3.2:3b")]) for name in ("a", "b", "c")]
    router = make_router(nodes=sims)
    for sim in sims[:2]:  # loaded on a and b, not on c
        load = {"model": "llama3.2:3b", "keep_alive": -1}
        assert httpx.post(sim.url + "/api/generate", json=load, timeout=30).status_code == 200
    router.poll_now()
    client = ollama.Client(host=router.url, timeout=30)
    assert loaded_on(router) == ["a", "b"]
    if endpoint == "generate":
        reply = client.generate(model="llama3.2:3b", keep_alive=0)
    else:
        reply = client.chat(model="llama3.2:3b", messages=[], keep_alive="0s")
    assert reply.done and reply.done_reason == "unload"
    assert loaded_on(router) == []  # (at once: no poll interval waited for)
    for sim in sims:
        assert httpx.get(sim.url + "/api/ps", timeout=30).json()["models"] == []
    client.generate(model="llama3.2:3b", keep_alive="5m")  # a load: one node
    router.poll_now()
    assert len(loaded_on(router)) == 1


def loaded_on(router) -> list[str]:
    """The nodes herd's ``/api/ps`` lists llama3.2:3b on."""
    models = httpx.get(router.url + "/api/ps", timeout=30).json()["models"]
    return sorted(m["node"] for m in models if m["name"] == "llama3.2:3b")


@pytest.mark.parametrize(
    ("keep_alive", "unloads"),
    [(0, True), (0.0, True), ("0", True), ("0s", True), ("0m0s", True), (" 0 ", True),
     ("0.0h", True), (None, False), (-1, False), ("5m", False), ("", False), ("s", False),
     ("10s", False), ("0x", False)],
)  # fmt: skip
def test_what_ollama_reads_as_an_unload(keep_alive: object, unloads: bool) -> None:
    assert is_unload(GenerateRequest(model="m", keep_alive=keep_alive)) is unloads
    assert is_unload(ChatRequest(model="m", messages=[], keep_alive=keep_alive)) is unloads
    assert is_unload(ChatRequest(model="m", keep_alive=keep_alive)) is unloads
    assert not is_unload(GenerateRequest(model="m", prompt="hi", keep_alive=keep_alive))
    asked = ChatRequest(model="m", messages=[Message("user", "hi")], keep_alive=keep_alive)
    assert not is_unload(asked)
