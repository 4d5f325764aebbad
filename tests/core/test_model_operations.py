"""Model operations go through Backend methods; a node that cannot do one says so (400)."""

from __future__ import annotations

import httpx
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
