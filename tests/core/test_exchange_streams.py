"""Streams are read as JSON: a node that writes valid JSON its own way is served in full.

The node is a real aiohttp server (tests/core/odd_node.py) writing what ``json.dumps``
writes, keys in another order, ``\\u`` escapes, CRLF line ends, no final newline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest

from tests.core.odd_node import MODEL, PROMPT_TOKENS, WORDS, OddNode
from tests.core.trace_collector import collector, wait_traces

__all__ = ["collector"]  # the fixture, used by name


@pytest.fixture
def odd() -> Iterator[OddNode]:
    node = OddNode().start()
    yield node
    node.stop()


@pytest.fixture
def router(odd: OddNode, make_router, collector):  # type: ignore[no-untyped-def]
    handle = make_router(nodes=[odd.entry()], plugins={"load": [collector]})
    handle.poll_now()
    return handle


def one_trace(timeout: float = 20.0):  # type: ignore[no-untyped-def]
    (trace,) = wait_traces(1, timeout)
    return trace


def assert_served(trace) -> None:  # type: ignore[no-untyped-def]
    assert trace.status == "completed", trace.error
    assert trace.error == ""
    assert trace.node == "odd" and trace.served_model == MODEL
    assert trace.completion_tokens == len(WORDS)
    assert trace.prompt_tokens == PROMPT_TOKENS
    assert trace.tokens_per_second > 0


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def test_ollama_chat_stream_ends_cleanly_with_the_nodes_statistics(router) -> None:
    with httpx.stream("POST", router.url + "/api/chat", json=CHAT, timeout=30) as reply:
        assert reply.status_code == 200
        lines = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    assert all("error" not in line for line in lines)
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == len(WORDS)
    assert "".join(line["message"]["content"] for line in lines) == "".join(WORDS)
    assert_served(one_trace())


def test_ollama_generate_stream_ends_cleanly(router) -> None:
    body = {"model": MODEL, "prompt": "hi"}
    with httpx.stream("POST", router.url + "/api/generate", json=body, timeout=30) as reply:
        lines = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    assert lines[-1]["done"] is True and all("error" not in line for line in lines)
    assert "".join(line.get("response", "") for line in lines) == "".join(WORDS)
    assert_served(one_trace())


def test_the_official_ollama_client_reads_the_stream_without_raising(router) -> None:
    client = ollama.Client(host=router.url, timeout=30)
    parts = list(client.chat(model=MODEL, messages=CHAT["messages"], stream=True))
    assert parts[-1].done and parts[-1].eval_count == len(WORDS)
    assert "".join(p.message.content or "" for p in parts) == "".join(WORDS)
    assert_served(one_trace())


def test_ollama_whole_reply_in_whitespace_json_is_traced_with_tokens(router) -> None:
    reply = httpx.post(router.url + "/api/chat", json={**CHAT, "stream": False}, timeout=30)
    assert reply.status_code == 200 and reply.json()["message"]["content"] == "".join(WORDS)
    assert_served(one_trace())


def test_openai_stream_through_the_sdk_finishes_with_usage(router) -> None:
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="none", max_retries=0)
    events = list(
        client.chat.completions.create(
            model=MODEL,
            messages=CHAT["messages"],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
    assert text == "".join(WORDS)
    finishes = [e.choices[0].finish_reason for e in events if e.choices]
    assert finishes[-1] == "stop"
    assert events[-1].usage is not None and events[-1].usage.completion_tokens == len(WORDS)
    assert_served(one_trace())


def test_openai_whole_reply_counts_tokens(router) -> None:
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="none", max_retries=0)
    reply = client.chat.completions.create(model=MODEL, messages=CHAT["messages"])
    assert reply.choices[0].message.content == "".join(WORDS)
    assert reply.usage is not None and reply.usage.completion_tokens == len(WORDS)
    assert_served(one_trace())


def test_an_alias_is_renamed_back_in_a_spaced_stream(odd, make_router, collector) -> None:
    router = make_router(
        nodes=[odd.entry()],
        plugins={"load": [collector]},
        routing={"aliases": {"tiny": MODEL}},
    )
    router.poll_now()
    body = {**CHAT, "model": "tiny"}
    with httpx.stream("POST", router.url + "/api/chat", json=body, timeout=30) as reply:
        assert reply.headers["x-herd-model"] == MODEL
        lines = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    assert {line["model"] for line in lines} == {"tiny"}
    trace = one_trace()
    assert trace.model == "tiny" and trace.served_model == MODEL and trace.status == "completed"


def test_the_bare_request_carries_each_value_in_its_own_field() -> None:
    # bare_request builds InferenceRequest by position: a reordered field would move
    # a value into its neighbour's
    from types import SimpleNamespace

    from herd._engine.intake import bare_request

    http = SimpleNamespace(
        scope={"client": ("10.0.0.2", 5150), "herd_api_key": "team-a"},
        headers={"traceparent": "00-abc-def-01"},
    )
    exchange = SimpleNamespace(
        http=http,
        api="openai",
        endpoint="chat",
        kind="text",
        requested="Llama3.2",
        resolved="llama3.2:latest",
        received_at=1234.5,
    )
    request = bare_request(exchange)  # type: ignore[arg-type]
    assert (request.api, request.endpoint, request.kind) == ("openai", "chat", "text")
    assert (request.model, request.model_key) == ("Llama3.2", "llama3.2:latest")
    assert (request.body, request.stream, request.raw_body) == ({}, False, None)
    assert (request.shaped, request.num_ctx, request.tags) == (None, None, [])
    assert len(request.request_id) == 16 and request.received_at == 1234.5
    assert (request.client, request.traceparent) == ("10.0.0.2:5150", "00-abc-def-01")
    assert request.api_key == "team-a"
