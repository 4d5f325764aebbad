"""Embeddings: long input lists are split into batches, spread over the nodes, rejoined."""

from __future__ import annotations

import httpx
import pytest
from herd.testing import embedding_vector
from openai import OpenAI

from tests.conftest import emulated

EMBEDDER = "all-minilm:latest"


@pytest.fixture
def two_embedders(make_sim):
    return [make_sim(name=name, models=[emulated(EMBEDDER, 0.05, ("embedding",))]) for name in "ab"]


def test_a_long_input_list_is_batched_over_both_nodes(two_embedders, make_router) -> None:
    for node in two_embedders:  # embedding models are small and hot: loaded on both
        httpx.post(node.url + "/api/embed", json={"model": "all-minilm", "input": "warm up"})
        node.reset()
    router = make_router(nodes=two_embedders, workloads={"embed_batch_size": 2})
    texts = [f"sentence number {i}" for i in range(7)]
    reply = httpx.post(router.url + "/api/embed", json={"model": "all-minilm", "input": texts})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "all-minilm"
    assert len(body["embeddings"]) == len(texts)
    for vector, text in zip(body["embeddings"], texts, strict=True):
        assert vector == pytest.approx(embedding_vector("all-minilm", text, 384))
    assert body["prompt_eval_count"] > 0
    calls = [node.stats()["requests"].get("/api/embed", 0) for node in two_embedders]
    assert sum(calls) == 4 and min(calls) >= 1, calls


def test_batches_spread_even_when_the_model_is_loaded_on_one_node_only(
    two_embedders, make_router
) -> None:
    warm = two_embedders[0]  # a small model loads at once: a cold node is nearly as good
    httpx.post(warm.url + "/api/embed", json={"model": "all-minilm", "input": "warm up"})
    warm.reset()
    router = make_router(nodes=two_embedders, workloads={"embed_batch_size": 2})
    texts = [f"sentence number {i}" for i in range(8)]
    reply = httpx.post(router.url + "/api/embed", json={"model": "all-minilm", "input": texts})
    assert reply.status_code == 200, reply.text
    calls = [node.stats()["requests"].get("/api/embed", 0) for node in two_embedders]
    assert sum(calls) == 4 and min(calls) >= 1, calls


def test_short_lists_go_whole_and_openai_clients_are_batched_too(
    two_embedders, make_router
) -> None:
    router = make_router(nodes=two_embedders, workloads={"embed_batch_size": 3})
    short = httpx.post(router.url + "/api/embed", json={"model": "all-minilm", "input": ["x", "y"]})
    assert len(short.json()["embeddings"]) == 2
    assert sum(n.stats()["requests"].get("/api/embed", 0) for n in two_embedders) == 1
    client = OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)
    texts = [f"t{i}" for i in range(8)]
    data = client.embeddings.create(model="all-minilm", input=texts).data
    assert [d.index for d in data] == list(range(8))
    assert data[5].embedding == pytest.approx(embedding_vector("all-minilm", "t5", 384), rel=1e-5)
    assert sum(n.stats()["requests"].get("/api/embed", 0) for n in two_embedders) == 1 + 3


def test_a_failing_batch_fails_the_request(two_embedders, make_router) -> None:
    for node in two_embedders:
        node.fail(count=10, status=500, error="embedding runner crashed")
    router = make_router(nodes=two_embedders, workloads={"embed_batch_size": 1})
    reply = httpx.post(router.url + "/api/embed", json={"model": "all-minilm", "input": ["a", "b"]})
    assert reply.status_code == 502
    assert "embedding runner crashed" in reply.json()["error"]


def test_more_batches_than_the_fleet_has_slots_all_come_back(make_sim, make_router) -> None:
    """Six batches for a node that embeds one at a time: each batch frees its slot as soon
    as its vectors are in, so the next can go (held until all had opened, the second one
    waited forever for the first's slot)."""
    node = make_sim(name="one", models=[emulated(EMBEDDER, 0.05, ("embedding",))])
    router = make_router(
        nodes=[{"name": "one", "url": node.url, "num_parallel": 1}],
        workloads={"embed_batch_size": 2},
    )
    texts = [f"line {i}" for i in range(11)]
    reply = httpx.post(
        router.url + "/api/embed", json={"model": "all-minilm", "input": texts}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    vectors = reply.json()["embeddings"]
    assert len(vectors) == len(texts)
    for vector, text in zip(vectors, texts, strict=True):
        assert vector == pytest.approx(embedding_vector("all-minilm", text, 384))
    assert node.stats()["requests"]["/api/embed"] == 6
    assert node.stats()["max_concurrent"] == 1
    queue = httpx.get(router.url + "/fleet/queue", timeout=10).json()["nodes"]["one"]
    assert queue[EMBEDDER]["in_flight"] == 0 and queue[EMBEDDER]["pending"] == 0
