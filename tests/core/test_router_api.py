"""Every Ollama endpoint through the router, with the real ollama client and raw HTTP."""

from __future__ import annotations

import httpx
import msgspec
import ollama
import pytest

from tests.conftest import emulated


@pytest.fixture
def sim(make_sim):
    return make_sim(
        name="solo",
        models=[
            emulated("llama3.2:3b"),
            emulated("all-minilm:latest", 0.05, ("embedding",)),
        ],
        registry=[emulated("phi3:mini", 0.5)],
    )


@pytest.fixture
def router(make_router, sim):
    return make_router(nodes=[sim])


def chat_body(model: str = "llama3.2:3b", stream: bool = True, **extra):
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "stream": stream,
        **extra,
    }


def test_root_answers_like_ollama(router) -> None:
    reply = httpx.get(router.url + "/")
    assert reply.status_code == 200
    assert reply.text == "Ollama is running"
    assert reply.headers.get_list("content-type") == ["text/plain; charset=utf-8"]  # one charset
    head = httpx.head(router.url + "/")
    assert head.status_code == 200 and head.content == b""


def test_healthz_reports_version_and_node_counts(router) -> None:
    body = httpx.get(router.url + "/healthz").json()
    assert body["status"] == "ok"
    assert body["nodes"] == {"total": 1, "online": 1, "offline": 0, "unknown": 0}


def test_version_reports_fleet_and_nodes(router) -> None:
    body = httpx.get(router.url + "/api/version").json()
    assert body["version"] == "0.12.6"
    assert body["nodes"] == {"solo": "0.12.6"}
    assert body["herd_version"]


def test_streamed_chat_with_ollama_client_matches_the_node(router, sim) -> None:
    client = ollama.Client(host=router.url)
    parts = list(
        client.chat(
            model="llama3.2:3b", messages=[{"role": "user", "content": "hello"}], stream=True
        )
    )
    assert parts[-1]["done"] is True
    assert parts[-1]["done_reason"] == "stop"
    assert all(p["model"] == "llama3.2:3b" for p in parts)
    text = "".join(p["message"]["content"] for p in parts)
    direct = ollama.Client(host=sim.url).chat(
        model="llama3.2:3b", messages=[{"role": "user", "content": "hello"}]
    )
    assert text == direct["message"]["content"] and text


def test_non_streamed_chat_is_one_object_with_metrics(router) -> None:
    reply = ollama.Client(host=router.url).chat(
        model="llama3.2:3b", messages=[{"role": "user", "content": "hello"}], stream=False
    )
    assert reply["done"] is True
    assert reply["eval_count"] > 0
    assert reply["message"]["content"]


def test_stream_framing_is_ndjson_without_blank_lines(router) -> None:
    with httpx.stream("POST", router.url + "/api/chat", json=chat_body()) as reply:
        assert reply.headers["content-type"].startswith("application/x-ndjson")
        assert reply.headers["x-herd-node"] == "solo"
        assert reply.headers["x-herd-retries"] == "0"
        assert reply.headers["x-herd-model"] == "llama3.2:3b" or reply.headers["x-herd-model"]
        raw = b"".join(reply.iter_bytes())
    lines = raw.split(b"\n")
    assert lines[-1] == b""
    assert all(line for line in lines[:-1])
    objects = [msgspec.json.decode(line) for line in lines[:-1]]
    assert [o["done"] for o in objects].count(True) == 1 and objects[-1]["done"]


def test_generate_streamed_and_not(router) -> None:
    client = ollama.Client(host=router.url)
    parts = list(client.generate(model="llama3.2:3b", prompt="tell me", stream=True))
    assert parts[-1]["done"] and "".join(p["response"] for p in parts)
    whole = client.generate(model="llama3.2:3b", prompt="tell me")
    assert whole["response"] == "".join(p["response"] for p in parts)


def test_load_and_unload_through_router(router) -> None:
    loaded = httpx.post(router.url + "/api/generate", json={"model": "llama3.2:3b"}).json()
    assert loaded["done_reason"] == "load"
    unloaded = httpx.post(
        router.url + "/api/generate", json={"model": "llama3.2:3b", "keep_alive": 0}
    ).json()
    assert unloaded["done_reason"] == "unload"


def test_embed_and_legacy_embeddings(router) -> None:
    client = ollama.Client(host=router.url)
    result = client.embed(model="all-minilm", input=["a", "b"])
    assert len(result["embeddings"]) == 2
    legacy = client.embeddings(model="all-minilm", prompt="a")
    assert len(legacy["embedding"]) == len(result["embeddings"][0])


def test_tags_ps_and_show(router) -> None:
    client = ollama.Client(host=router.url)
    names = {m["model"] for m in client.list()["models"]}
    assert {"llama3.2:3b", "all-minilm:latest"} <= names
    tags = httpx.get(router.url + "/api/tags").json()["models"]
    assert all(m["nodes"] == ["solo"] for m in tags)
    client.chat(model="llama3.2:3b", messages=[{"role": "user", "content": "x"}])
    router.poll_now()
    ps = httpx.get(router.url + "/api/ps").json()["models"]
    assert any(m["name"] == "llama3.2:3b" and m["node"] == "solo" for m in ps)
    shown = client.show("llama3.2:3b")
    assert shown.modelinfo is not None


def test_pull_streams_progress_and_updates_tags(router) -> None:
    client = ollama.Client(host=router.url)
    statuses = [p["status"] for p in client.pull("phi3:mini", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "phi3:mini" in {m["model"] for m in client.list()["models"]}


def test_pull_not_streamed(router) -> None:
    reply = httpx.post(router.url + "/api/pull", json={"model": "phi3:mini", "stream": False})
    assert reply.status_code == 200 and reply.json()["status"] == "success"


def test_a_pull_with_every_node_draining_says_so(router) -> None:
    assert httpx.post(router.url + "/fleet/nodes/solo/drain").status_code == 200
    reply = httpx.post(router.url + "/api/pull", json={"model": "phi3:mini", "stream": False})
    assert reply.status_code == 503
    assert reply.json()["error"] == "no node to pull onto: every online node is draining (solo)"


def test_delete_and_copy_need_a_node(router) -> None:
    reply = httpx.request("DELETE", router.url + "/api/delete", json={"model": "llama3.2:3b"})
    assert reply.status_code == 400
    assert "node" in reply.json()["error"] and "solo" in reply.json()["error"]
    reply = httpx.post(router.url + "/api/copy", json={"source": "llama3.2:3b", "destination": "x"})
    assert reply.status_code == 400


def test_copy_then_delete_on_a_named_node(router) -> None:
    reply = httpx.post(
        router.url + "/api/copy",
        json={"source": "llama3.2:3b", "destination": "mine:latest", "node": "solo"},
    )
    assert reply.status_code == 200 and reply.content == b""
    assert "mine:latest" in {
        m["model"] for m in httpx.get(router.url + "/api/tags").json()["models"]
    }
    reply = httpx.request(
        "DELETE",
        router.url + "/api/delete",
        json={"model": "mine"},
        headers={"X-Herd-Node": "solo"},
    )
    assert reply.status_code == 200
    assert "mine:latest" not in {
        m["model"] for m in httpx.get(router.url + "/api/tags").json()["models"]
    }


def test_names_match_as_ollama_matches_them(router) -> None:
    reply = httpx.post(router.url + "/api/chat", json=chat_body("LLAMA3.2:3B", stream=False))
    assert reply.status_code == 200
    assert reply.json()["model"] == "LLAMA3.2:3B"


def test_head_is_allowed_on_tags_and_version_as_ollama_allows_it(router) -> None:
    for path in ("/api/tags", "/api/version"):
        reply = httpx.head(router.url + path)
        assert reply.status_code == 200 and reply.content == b""


def test_version_ignores_nodes_that_are_not_ollama(make_sim, make_router) -> None:
    """An OpenAI-compatible node has no Ollama version: it must not become the fleet's."""
    ollama_node, vllm = make_sim(name="ollama"), make_sim(name="vllm", api="openai")
    router = make_router(
        nodes=[
            {"name": "ollama", "url": ollama_node.url},
            {"name": "vllm", "url": vllm.url, "type": "openai"},
        ]
    )
    router.poll_now()
    body = httpx.get(router.url + "/api/version").json()
    assert body["nodes"] == {"ollama": "0.12.6", "vllm": "openai"}
    assert body["version"] == "0.12.6"
