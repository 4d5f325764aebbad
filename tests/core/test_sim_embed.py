"""herd-sim: /api/embed and the legacy /api/embeddings."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import ollama
import pytest
from herd.testing import SimConfig, SimNode, embedding_vector


@pytest.fixture(scope="module")
def node() -> Iterator[SimNode]:
    with SimNode(SimConfig(name="embed")) as sim:
        yield sim


def embed(node: SimNode, **body: object) -> httpx.Response:
    body.setdefault("model", "all-minilm")
    return httpx.post(node.url + "/api/embed", json=body)


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


def test_embed_returns_one_unit_vector_per_input_in_order(node: SimNode) -> None:
    body = embed(node, input=["alpha", "beta", "alpha"]).json()
    assert body["model"] == "all-minilm"
    first, second, third = body["embeddings"]
    assert len(first) == 384 and first == third and first != second
    assert all(abs(norm(vector) - 1.0) < 1e-9 for vector in body["embeddings"])
    assert first == embedding_vector("all-minilm", "alpha", 384)
    assert {"total_duration", "load_duration", "prompt_eval_count"} <= set(body)


def test_embed_accepts_a_single_string_and_uses_the_model_length(node: SimNode) -> None:
    body = embed(node, model="nomic-embed-text", input="one text").json()
    assert len(body["embeddings"]) == 1 and len(body["embeddings"][0]) == 768


def test_embed_dimensions_truncate_then_renormalise(node: SimNode) -> None:
    (vector,) = embed(node, input="alpha", dimensions=8).json()["embeddings"]
    full = embedding_vector("all-minilm", "alpha", 384)
    assert len(vector) == 8 and abs(norm(vector) - 1.0) < 1e-9
    scale = vector[0] / full[0]
    assert all(abs(v - f * scale) < 1e-9 for v, f in zip(vector, full[:8], strict=True))


@pytest.mark.parametrize("empty", ["", [], None])
def test_empty_input_loads_the_model_and_returns_no_vectors(node: SimNode, empty: object) -> None:
    body = {"model": "all-minilm"} if empty is None else {"model": "all-minilm", "input": empty}
    response = httpx.post(node.url + "/api/embed", json=body)
    assert response.json() == {"model": "all-minilm", "embeddings": []}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "all-minilm", "input": [1, 2]}, 400, "invalid input type"),
        ({"model": "all-minilm", "input": 3}, 400, "invalid input type"),
        ({"model": "ghost", "input": "x"}, 404, 'model "ghost" not found, try pulling it first'),
        ({"model": "llama3.2:3b", "input": "x"}, 400, '"llama3.2:3b" does not support embeddings'),
        (
            {"model": "all-minilm", "input": "x" * 4000, "truncate": False},
            400,
            "the input length exceeds the context length",
        ),
    ],
)
def test_embed_errors_match_ollama(node: SimNode, body: dict, status: int, error: str) -> None:
    response = httpx.post(node.url + "/api/embed", json=body)
    assert (response.status_code, response.json()) == (status, {"error": error})


def test_long_input_is_truncated_by_default(node: SimNode) -> None:
    body = embed(node, input="x" * 4000).json()
    assert body["prompt_eval_count"] == 512


def test_legacy_embeddings_returns_one_vector_that_is_not_normalised(node: SimNode) -> None:
    body = httpx.post(
        node.url + "/api/embeddings", json={"model": "all-minilm", "prompt": "alpha"}
    ).json()
    assert set(body) == {"embedding"} and len(body["embedding"]) == 384
    assert norm(body["embedding"]) > 1.5
    direction = [value / norm(body["embedding"]) for value in body["embedding"]]
    expected = embedding_vector("all-minilm", "alpha", 384)
    assert all(abs(a - b) < 1e-9 for a, b in zip(direction, expected, strict=True))


def test_legacy_embeddings_empty_prompt_and_unknown_model(node: SimNode) -> None:
    url = node.url + "/api/embeddings"
    assert httpx.post(url, json={"model": "all-minilm"}).json() == {"embedding": []}
    missing = httpx.post(url, json={"model": "ghost", "prompt": "x"})
    assert missing.status_code == 404
    assert missing.json() == {"error": 'model "ghost" not found, try pulling it first'}


def test_the_official_client_embeds(node: SimNode) -> None:
    client = ollama.Client(host=node.url)
    result = client.embed(model="all-minilm", input=["a", "b"])
    assert len(result.embeddings) == 2
    assert len(client.embeddings(model="all-minilm", prompt="a").embedding) == 384
