"""/v1/responses with the real ``openai`` package's ``responses`` client, over emulated nodes.

The emulator answers deterministically (``herd.testing.expected_reply``) and calls a tool
when the last user message names one, so every assertion compares with what the node
really produced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from herd.protocol.responses_store import ResponseStore
from herd.testing import SimConfig, SimNode, expected_reply, expected_thinking
from herd.testing.router_runner import RouterHandle

LLAMA, QWEN3 = "llama3.2:3b", "qwen3:4b"
REPLY_TOKENS = 24
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture(scope="module")
def router() -> Iterator[RouterHandle]:
    with (
        SimNode(SimConfig(name="solo", port=0)) as sim,
        RouterHandle(nodes=[{"name": "solo", "url": sim.url}]) as handle,
    ):
        yield handle


@pytest.fixture
def client(router: RouterHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)


def test_string_input_with_instructions_and_usage(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model=LLAMA, input="hello", instructions="Be brief."
    )
    assert raw.headers["x-herd-node"] == "solo"
    response = raw.parse()
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed" and response.model == LLAMA
    assert response.instructions == "Be brief."
    assert response.output_text == "".join(expected_reply(LLAMA, "hello", REPLY_TOKENS))
    assert response.usage.output_tokens == REPLY_TOKENS
    assert response.usage.total_tokens == response.usage.input_tokens + REPLY_TOKENS


def test_max_output_tokens_makes_it_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model=LLAMA, input="short", max_output_tokens=4)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "".join(expected_reply(LLAMA, "short", 4))


def test_stream_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=LLAMA, input="stream me", stream=True))
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "".join(expected_reply(LLAMA, "stream me", REPLY_TOKENS))
    assert events[-1].response.output_text == text
    assert events[-1].response.usage.output_tokens == REPLY_TOKENS


def test_stream_helper_gives_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model=LLAMA, input="helper") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "".join(expected_reply(LLAMA, "helper", REPLY_TOKENS))


def test_function_tools_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model=LLAMA, input="What does get_weather say for Paris?", tools=TOOLS
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id and call.arguments.startswith("{")
    second = client.responses.create(
        model=LLAMA,
        tools=TOOLS,
        input=[
            {"role": "user", "content": "What does get_weather say for Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "18 C"},
        ],
    )
    assert second.status == "completed" and second.output_text


def test_streamed_function_call_events(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model=LLAMA, input="call get_weather for Oslo", tools=TOOLS, stream=True
        )
    )
    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    final = events[-1].response
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert call.arguments == done.arguments and call.name == "get_weather"


def test_previous_response_id_continues_the_conversation(
    client: openai.OpenAI, router: RouterHandle
) -> None:
    first = client.responses.create(model=LLAMA, input="remember me")
    second = client.responses.create(model=LLAMA, input="and now?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    # The node saw the whole conversation: more prompt tokens than the new turn alone.
    alone = client.responses.create(model=LLAMA, input="and now?")
    assert second.usage.input_tokens > alone.usage.input_tokens
    streamed = list(
        client.responses.create(
            model=LLAMA, input="and now?", previous_response_id=first.id, stream=True
        )
    )
    third = client.responses.create(
        model=LLAMA, input="third", previous_response_id=streamed[-1].response.id
    )
    assert third.usage.input_tokens > second.usage.input_tokens
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model=LLAMA, input="x", previous_response_id="resp_nope")
    assert missing.value.code == "previous_response_not_found"


def test_store_false_is_not_kept(client: openai.OpenAI) -> None:
    first = client.responses.create(model=LLAMA, input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=LLAMA, input="x", previous_response_id=first.id)


def test_reasoning_comes_back_as_a_reasoning_item(client: openai.OpenAI) -> None:
    response = client.responses.create(model=QWEN3, input="think", reasoning={"effort": "medium"})
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == "".join(expected_thinking(QWEN3, "think", 8))


def test_async_client(router: RouterHandle) -> None:
    async def run() -> tuple[str, str]:
        client = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0)
        whole = await client.responses.create(model=LLAMA, input="async")
        stream = await client.responses.create(model=LLAMA, input="async", stream=True)
        text = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
        await client.close()
        return whole.output_text, text

    whole, streamed = asyncio.run(run())
    assert whole == streamed == "".join(expected_reply(LLAMA, "async", REPLY_TOKENS))


def test_bad_requests_are_openai_400s(router: RouterHandle) -> None:
    url = router.url + "/v1/responses"
    r = httpx.post(url, json={"model": LLAMA})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    r = httpx.post(url, json={"model": LLAMA, "input": [{"type": "mystery"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[0].type"
    r = httpx.post(url, json={"model": "missing:1b", "input": "hi"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_store_is_bounded_in_count_and_time() -> None:
    now = [0.0]
    store = ResponseStore(max_entries=2, ttl_seconds=10, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        store.put(name, [{"role": "user", "content": name}])
    assert store.get("a") is None and len(store) == 2
    assert store.get("b") is not None
    now[0] = 11.0
    assert store.get("b") is None and store.get("c") is None
