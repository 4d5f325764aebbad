"""/v1/messages with the real ``anthropic`` package (sync and async), over emulated nodes.

The emulator answers deterministically (``herd.testing.expected_reply``), calls a tool when
the last user message names one and thinks on thinking models, so every assertion compares
with what the node really produced.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from herd.testing import (
    SimConfig,
    SimNode,
    expected_reply,
    expected_thinking,
    tool_call_arguments,
)
from herd.testing.router_runner import RouterHandle

LLAMA, QWEN3, LLAVA = "llama3.2:3b", "qwen3:4b", "llava:7b"
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d49484452")).decode()
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
}
TOOLS: list[Any] = [
    {"name": "get_weather", "description": "Weather now", "input_schema": WEATHER},
    {"name": "get_time", "input_schema": {"type": "object"}},
]
REPLY_TOKENS = 24


@pytest.fixture(scope="module")
def router() -> Iterator[RouterHandle]:
    with (
        SimNode(SimConfig(name="solo", port=0)) as sim,
        RouterHandle(
            nodes=[{"name": "solo", "url": sim.url}],
            routing={"aliases": {"claude-sonnet-4-5": LLAMA}},
            auth={"api_keys": [{"name": "claude", "key": "sk-herd-anthropic"}]},
        ) as handle,
    ):
        yield handle


@pytest.fixture
def client(router: RouterHandle) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=router.url, api_key="sk-herd-anthropic", max_retries=0)


def text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def test_reply_is_the_nodes_answer_with_usage(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(
        model=LLAMA, max_tokens=100, messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-herd-node"] == "solo"
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == LLAMA
    assert text_of(message) == "".join(expected_reply(LLAMA, "hello", REPLY_TOKENS))
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == REPLY_TOKENS
    assert message.usage.input_tokens > 0


def test_system_max_tokens_and_alias(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=5,
        system=[{"type": "text", "text": "You are terse."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "count"}]}],
        stop_sequences=["zzz"],
        # older SDKs send these as arguments; Claude Code still sends temperature
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 40},
    )
    assert message.model == "claude-sonnet-4-5"
    assert text_of(message) == "".join(expected_reply(LLAMA, "count", 5))
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 5


def test_stream_events_in_anthropic_order(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=LLAMA, max_tokens=100, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert text_of(final) == "".join(expected_reply(LLAMA, "stream me", REPLY_TOKENS))
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == REPLY_TOKENS


def test_raw_stream_has_ping_and_text_deltas(router: RouterHandle) -> None:
    body = {
        "model": LLAMA,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "raw"}],
    }
    headers = {"x-api-key": "sk-herd-anthropic", "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", router.url + "/v1/messages", json=body, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        names = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert names[:2] == ["message_start", "ping"]
    assert names.count("content_block_delta") == REPLY_TOKENS


def test_tools_round_trip(client: anthropic.Anthropic) -> None:
    question = [{"role": "user", "content": "What does get_weather say for Paris?"}]
    first = client.messages.create(model=LLAMA, max_tokens=200, tools=TOOLS, messages=question)
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and call.id
    assert call.input == tool_call_arguments(WEATHER)
    follow_up = [
        *question,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C"}],
        },
    ]
    second = client.messages.create(model=LLAMA, max_tokens=200, tools=TOOLS, messages=follow_up)
    assert second.stop_reason == "end_turn" and text_of(second)


def test_streamed_tool_call_has_input_json_delta(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=LLAMA,
        max_tokens=200,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_time"},
        messages=[{"role": "user", "content": "call get_time please"}],
    ) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "input_json_delta" in deltas
    (call,) = [block for block in final.content if block.type == "tool_use"]
    assert call.name == "get_time" and final.stop_reason == "tool_use"


def test_thinking_comes_back_as_thinking_blocks(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=QWEN3,
        max_tokens=200,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think"}],
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "".join(expected_thinking(QWEN3, "think", 8))
    with client.messages.stream(
        model=QWEN3,
        max_tokens=200,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think"}],
    ) as stream:
        deltas = {e.delta.type for e in stream if e.type == "content_block_delta"}
    assert deltas == {"thinking_delta", "text_delta"}


def test_thinking_is_dropped_for_a_model_that_cannot_think(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=LLAMA,
        max_tokens=50,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "no thoughts"}],
    )
    assert [block.type for block in message.content] == ["text"]


def test_image_blocks_reach_a_vision_model(client: anthropic.Anthropic) -> None:
    image = {"type": "base64", "media_type": "image/png", "data": PNG}
    message = client.messages.create(
        model=LLAVA,
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [{"type": "image", "source": image}, {"type": "text", "text": "what"}],
            }
        ],
    )
    assert text_of(message)


def test_async_client_streams_and_not(router: RouterHandle) -> None:
    async def run() -> tuple[str, str]:
        client = anthropic.AsyncAnthropic(
            base_url=router.url, api_key="sk-herd-anthropic", max_retries=0
        )
        whole = await client.messages.create(
            model=LLAMA, max_tokens=100, messages=[{"role": "user", "content": "async"}]
        )
        async with client.messages.stream(
            model=LLAMA, max_tokens=100, messages=[{"role": "user", "content": "async"}]
        ) as stream:
            streamed = "".join([text async for text in stream.text_stream])
        await client.close()
        return text_of(whole), streamed

    whole, streamed = asyncio.run(run())
    assert whole == streamed == "".join(expected_reply(LLAMA, "async", REPLY_TOKENS))


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model=LLAMA, messages=[{"role": "user", "content": "x" * 400}]
    )
    assert counted.input_tokens == 100


def test_errors_take_anthropics_shape(client: anthropic.Anthropic, router: RouterHandle) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.body["type"] == "error"
    assert missing.value.body["error"]["type"] == "not_found_error"
    r = httpx.post(
        router.url + "/v1/messages",
        json={"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": "sk-herd-anthropic"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    bad_block = {"model": LLAMA, "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "nonsense"}]}]}  # fmt: skip
    r = httpx.post(
        router.url + "/v1/messages", json=bad_block, headers={"x-api-key": "sk-herd-anthropic"}
    )
    assert r.status_code == 400 and "messages.0.content.0" in r.json()["error"]["message"]
    with pytest.raises(anthropic.AuthenticationError) as denied:
        anthropic.Anthropic(base_url=router.url, api_key="wrong", max_retries=0).messages.create(
            model=LLAMA, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert denied.value.body["error"]["type"] == "authentication_error"


def test_bearer_token_is_accepted_too(router: RouterHandle) -> None:
    client = anthropic.Anthropic(
        base_url=router.url, auth_token="sk-herd-anthropic", api_key=None, max_retries=0
    )
    message = client.messages.create(
        model=LLAMA, max_tokens=5, messages=[{"role": "user", "content": "bearer"}]
    )
    assert text_of(message)


def test_the_models_api_answers_anthropics_shape_to_anthropic_clients(
    client: anthropic.Anthropic, router: RouterHandle
) -> None:
    """``/v1/models`` is both APIs' path: the anthropic package gets Anthropic's model
    objects and pages (it pages through them all by itself), its errors in Anthropic's
    shape; the openai package still gets OpenAI's list."""
    key = {"Authorization": "Bearer sk-herd-anthropic"}
    tags = httpx.get(router.url + "/api/tags", headers=key).json()["models"]
    fleet = {m["name"] for m in tags}
    page = client.models.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    assert page.first_id == page.data[0].id and page.last_id == page.data[1].id
    assert all(m.type == "model" and m.display_name == m.id for m in page.data)
    listed = [m.id for m in client.models.list(limit=2)]  # every page, after_id by after_id
    assert len(listed) == len(set(listed)) and set(listed) == fleet | {"claude-sonnet-4-5"}
    created = [m.created_at for m in client.models.list(limit=1000).data]
    assert created == sorted(created, reverse=True)  # newest first
    before = client.models.list(limit=1, before_id=listed[2])
    assert [m.id for m in before.data] == [listed[1]] and before.has_more
    alias = client.models.retrieve("claude-sonnet-4-5")
    assert alias.id == "claude-sonnet-4-5" and alias.type == "model"
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.models.retrieve("nope:1b")
    assert missing.value.body["error"]["type"] == "not_found_error"  # (Anthropic's shape)
    with pytest.raises(anthropic.BadRequestError, match="limit"):
        client.models.list(limit=0)
    openai_list = httpx.get(router.url + "/v1/models", headers=key).json()
    assert openai_list["object"] == "list" and {m["object"] for m in openai_list["data"]} == {
        "model"
    }
