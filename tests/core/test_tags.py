"""Request tags: from the header, ``metadata.tags`` and ``user``; checked, stripped, traced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import ollama
import openai
import pytest
from herd._engine.intake import MAX_TAGS, collect_tags, split_metadata
from herd.errors import HerdError
from herd.testing import SimConfig, SimNode
from herd.testing.router_runner import RouterHandle

from tests.conftest import emulated

LLAMA = "llama3.2:3b"


@pytest.fixture(scope="module")
def router() -> Iterator[RouterHandle]:
    models = [emulated(LLAMA), emulated("all-minilm:latest", 0.05, ("embedding",))]
    with (
        SimNode(SimConfig(name="solo", port=0, models=models, reply_tokens=4)) as sim,
        RouterHandle(nodes=[{"name": "solo", "url": sim.url}]) as handle,
    ):
        yield handle


@pytest.fixture
def traces(router: RouterHandle) -> Iterator[list[Any]]:
    """The traces the router records during the test (after their streams end)."""
    seen: list[Any] = []
    gateway = router.gateway
    original = gateway.finish

    def finish(trace: Any) -> None:
        seen.append(trace)
        original(trace)

    gateway.finish = finish
    yield seen
    del gateway.finish


def last_trace(traces: list[Any], count: int = 1) -> Any:
    deadline = time.monotonic() + 5
    while len(traces) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return traces[-1]


def test_openai_tags_from_header_metadata_and_user_reach_the_trace(
    router: RouterHandle, traces: list[Any]
) -> None:
    client = openai.OpenAI(
        base_url=router.url + "/v1",
        api_key="x",
        default_headers={"X-Herd-Tags": "team-a, nightly"},
    )
    client.chat.completions.create(
        model=LLAMA,
        messages=[{"role": "user", "content": "hi"}],
        user="alice@example.com",
        extra_body={"metadata": {"tags": ["batch", "team-a"]}},
    )
    trace = last_trace(traces)
    assert trace.api == "openai"
    assert trace.tags == ["team-a", "nightly", "batch", "user:alice@example.com"]


def test_streamed_and_embedding_requests_are_tagged_too(
    router: RouterHandle, traces: list[Any]
) -> None:
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x")
    list(
        client.chat.completions.create(
            model=LLAMA,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_body={"metadata": {"tags": "a,b"}},
        )
    )
    assert last_trace(traces, 1).tags == ["a", "b"]
    client.embeddings.create(
        model="all-minilm", input="x", extra_body={"metadata": {"tags": ["e"]}}
    )
    assert last_trace(traces, 2).tags == ["e"]


def test_ollama_tags_from_body_and_header_are_stripped_before_the_node(
    router: RouterHandle, traces: list[Any]
) -> None:
    body = {
        "model": LLAMA,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "metadata": {"tags": ["from-body"]},
    }
    reply = httpx.post(router.url + "/api/chat", json=body, headers={"X-Herd-Tags": "from-header"})
    assert reply.status_code == 200 and reply.json()["done"] is True
    trace = last_trace(traces)
    assert trace.api == "ollama" and trace.tags == ["from-header", "from-body"]
    client = ollama.Client(host=router.url, headers={"X-Herd-Tags": "py-client"})
    parts = list(client.generate(model=LLAMA, prompt="x", stream=True))
    assert parts[-1]["done"]
    assert last_trace(traces, 2).tags == ["py-client"]


@pytest.fixture
def sent(router: RouterHandle) -> Iterator[list[bytes]]:
    """The bodies the router sends to the node during the test."""
    bodies: list[bytes] = []
    backend = router.gateway.fleet.nodes["solo"].backend
    original = backend.open

    async def open_and_record(request: Any) -> Any:
        bodies.append(request.encoded_body())
        return await original(request)

    backend.open = open_and_record
    yield bodies
    del backend.open


def test_metadata_is_never_forwarded_to_the_node(router: RouterHandle, sent: list[bytes]) -> None:
    body = {"model": LLAMA, "prompt": "x", "stream": False, "metadata": {"tags": ["t"]}}
    assert httpx.post(router.url + "/api/generate", json=body).status_code == 200
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x")
    client.completions.create(model=LLAMA, prompt="x", extra_body={"metadata": {"tags": ["t"]}})
    assert len(sent) == 2
    for forwarded in sent:
        assert "metadata" not in msgspec.json.decode(forwarded)


def test_untagged_ollama_request_is_forwarded_byte_for_byte(
    router: RouterHandle, sent: list[bytes]
) -> None:
    body = b'{"model": "llama3.2:3b", "prompt": "say \\"metadata\\"", "stream": false}'
    reply = httpx.post(router.url + "/api/generate", content=body)
    assert reply.status_code == 200 and reply.json()["response"]
    assert sent == [body]


def test_split_metadata_only_takes_the_top_level_key() -> None:
    data, metadata = split_metadata(b'{"model":"m","metadata":{"tags":["x"]},"stream":true}')
    assert data == {"model": "m", "stream": True} and metadata == {"tags": ["x"]}
    nested = b'{"model":"m","tools":[{"parameters":{"properties":{"metadata":{}}}}]}'
    assert split_metadata(nested) == (None, None)


def test_a_bad_tag_is_a_400_naming_it_in_each_protocol(router: RouterHandle) -> None:
    reply = httpx.post(
        router.url + "/api/chat",
        json={"model": LLAMA, "messages": [], "metadata": {"tags": ["ok", "no spaces"]}},
    )
    assert reply.status_code == 400 and "'no spaces'" in reply.json()["error"]
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=LLAMA,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Herd-Tags": "fine,bad;tag"},
        )
    assert "'bad;tag'" in info.value.message and info.value.param == "X-Herd-Tags"


def test_tag_rules() -> None:
    assert collect_tags(None) == []
    assert collect_tags(" a ,, b ", {"tags": ["b", "c"]}, key_name="ci") == [
        "a",
        "b",
        "c",
        "key:ci",
    ]
    with pytest.raises(HerdError, match="reserved"):
        collect_tags("key:admin")
    with pytest.raises(HerdError, match="too many tags"):
        collect_tags(",".join(f"t{i}" for i in range(MAX_TAGS + 1)))
    with pytest.raises(HerdError, match="1 to 128"):
        collect_tags("x" * 129)
    with pytest.raises(HerdError, match="list of strings"):
        collect_tags(None, {"tags": [1, 2]})
    with pytest.raises(HerdError, match="metadata must be an object"):
        collect_tags(None, ["tags"])
    with pytest.raises(HerdError, match="user:bob smith"):
        collect_tags(None, user="bob smith")
