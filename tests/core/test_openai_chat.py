"""/v1/chat/completions with the real ``openai`` package (sync and async), over emulated nodes.

The emulator answers deterministically (``herd.testing.expected_reply`` and friends), calls a
tool when the last user message names one, thinks on thinking models and accepts images on
vision models, so every assertion compares with what the node really produced.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
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
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Now", "parameters": WEATHER},
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


@pytest.fixture(scope="module")
def router() -> Iterator[RouterHandle]:
    with (
        SimNode(SimConfig(name="solo", port=0)) as sim,
        RouterHandle(
            nodes=[{"name": "solo", "url": sim.url}],
            routing={"aliases": {"gpt-4o-mini": LLAMA}},
        ) as handle,
    ):
        yield handle


@pytest.fixture
def client(router: RouterHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_reply_is_the_nodes_answer_with_usage(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=LLAMA, messages=user("hello"))
    assert raw.headers["x-herd-node"] == "solo"
    reply = raw.parse()
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == LLAMA
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "".join(expected_reply(LLAMA, "hello", 24))
    assert choice.finish_reason == "stop"
    usage = reply.usage
    assert usage is not None and usage.completion_tokens == 24 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_joins_to_the_same_text_then_finish_then_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=LLAMA,
            messages=user("hello"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(expected_reply(LLAMA, "hello", 24))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 24
    assert len({c.id for c in chunks}) == 1


def test_async_client_streamed_and_not(router: RouterHandle) -> None:
    async def run() -> tuple[str, str]:
        client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
        whole = await client.chat.completions.create(model=LLAMA, messages=user("async"))
        stream = await client.chat.completions.create(
            model=LLAMA, messages=user("async"), stream=True
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return whole.choices[0].message.content or "", "".join(parts)

    whole, streamed = asyncio.run(run())
    assert whole == streamed == "".join(expected_reply(LLAMA, "async", 24))


def test_tool_call_then_tool_result_round_trip(client: openai.OpenAI) -> None:
    question = "What now? use get_weather please"
    reply = client.chat.completions.create(model=LLAMA, messages=user(question), tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == tool_call_arguments(WEATHER)
    follow_up = [
        *user(question),
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
    ]
    answer = client.chat.completions.create(model=LLAMA, messages=follow_up, tools=TOOLS)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == "".join(expected_reply(LLAMA, question, 24))


def test_streamed_tool_call_arrives_as_indexed_fragments(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=LLAMA, messages=user("call get_time"), tools=TOOLS, stream=True
        )
    )
    fragments = [t for c in chunks for t in c.choices[0].delta.tool_calls or []]
    assert fragments[0].index == 0 and fragments[0].id.startswith("call_")
    assert fragments[0].type == "function" and fragments[0].function.name == "get_time"
    arguments = "".join(f.function.arguments or "" for f in fragments if f.index == 0)
    assert json.loads(arguments) == {}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_offers_no_tools(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=LLAMA, messages=user("use get_weather"), tools=TOOLS, tool_choice="none"
    )
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls


def test_named_tool_choice_keeps_only_that_tool(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=LLAMA,
        messages=user("use get_weather or get_time"),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert reply.choices[0].message.tool_calls[0].function.name == "get_time"


def test_thinking_goes_to_reasoning_content_never_content(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=QWEN3, messages=user("think"))
    message = reply.choices[0].message
    assert message.model_extra["reasoning_content"] == "".join(expected_thinking(QWEN3, "think", 8))
    assert message.content == "".join(expected_reply(QWEN3, "think", 24))
    chunks = list(client.chat.completions.create(model=QWEN3, messages=user("think"), stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    assert (
        "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas)
        == (message.model_extra["reasoning_content"])
    )
    assert "".join(d.content or "" for d in deltas) == message.content


def test_reasoning_effort_none_turns_thinking_off(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=QWEN3, messages=user("quick"), reasoning_effort="none"
    )
    assert "reasoning_content" not in (reply.choices[0].message.model_extra or {})
    assert reply.usage.completion_tokens == 24


def test_json_mode_and_json_schema(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(
        model=LLAMA, messages=user("json"), response_format={"type": "json_object"}
    )
    words = "".join(expected_reply(LLAMA, "json", 24))
    assert json.loads(plain.choices[0].message.content) == {"reply": words}
    schema = client.chat.completions.create(
        model=LLAMA,
        messages=user("schema"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": WEATHER, "strict": True},
        },
    )
    assert json.loads(schema.choices[0].message.content) == tool_call_arguments(WEATHER)


def test_image_parts_reach_a_vision_model(client: openai.OpenAI) -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    reply = client.chat.completions.create(
        model=LLAVA, messages=[{"role": "user", "content": content}]
    )
    assert reply.usage.prompt_tokens >= 256  # the emulator counts 256 tokens per image
    assert reply.choices[0].message.content == "".join(expected_reply(LLAVA, "what is this?", 24))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": content}])
    assert "vision" in info.value.message
    remote = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=LLAVA, messages=[{"role": "user", "content": remote}])
    assert info.value.param == "messages[0].content[0].image_url"


def test_max_tokens_and_max_completion_tokens_give_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=LLAMA, messages=user("long"), max_tokens=3)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 3
    reply = client.chat.completions.create(
        model=LLAMA, messages=user("long"), max_tokens=5, max_completion_tokens=2
    )
    assert reply.usage.completion_tokens == 2
    chunks = list(
        client.chat.completions.create(
            model=LLAMA, messages=user("long"), max_completion_tokens=2, stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason == "length"


def test_seed_reaches_the_node(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=LLAMA, messages=user("seeded"), seed=7)
    assert reply.choices[0].message.content == "".join(
        expected_reply(LLAMA, "seeded", 24, request_seed=7)
    )


def test_alias_is_served_and_the_clients_name_echoed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=user("alias")
    )
    reply = raw.parse()
    assert reply.model == "gpt-4o-mini" and raw.headers["x-herd-model"] == LLAMA
    assert reply.choices[0].message.content == "".join(expected_reply(LLAMA, "alias", 24))


def test_extra_body_reaches_ollama_options(client: openai.OpenAI, router: RouterHandle) -> None:
    import httpx

    client.chat.completions.create(
        model="qwen2.5:7b",
        messages=user("context"),
        extra_body={"options": {"num_ctx": 2048}, "keep_alive": "1m"},
    )
    node_url = router.settings.nodes[0].url
    loaded = {m["name"]: m for m in httpx.get(node_url + "/api/ps").json()["models"]}
    assert loaded["qwen2.5:7b"]["context_length"] == 2048


def test_both_apis_agree_on_tool_calls_and_thinking(
    client: openai.OpenAI, router: RouterHandle
) -> None:
    import ollama

    question = "think, then use get_weather"
    native = ollama.Client(host=router.url).chat(model=QWEN3, messages=user(question), tools=TOOLS)
    reply = client.chat.completions.create(model=QWEN3, messages=user(question), tools=TOOLS)
    message = reply.choices[0].message
    assert native["message"]["thinking"] == message.model_extra["reasoning_content"]
    (native_call,) = native["message"]["tool_calls"]
    (call,) = message.tool_calls
    assert native_call["function"]["name"] == call.function.name == "get_weather"
    assert native_call["function"]["arguments"] == json.loads(call.function.arguments)
