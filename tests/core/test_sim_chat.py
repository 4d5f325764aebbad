"""herd-sim: /api/chat and /api/generate shapes, deterministic content and validation."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import ollama
import pytest
from herd.testing import SimConfig, SimNode, expected_reply, expected_thinking

METRICS = {
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "required": ["city", "days", "unit"],
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "ignored": {"type": "boolean"},
            },
        },
    },
}
PNG_BYTES = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()


@pytest.fixture(scope="module")
def node() -> Iterator[SimNode]:
    with SimNode(SimConfig(name="chat", seed=7)) as sim:
        yield sim


def ndjson(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.endswith("\n") and "\n\n" not in response.text
    return [json.loads(line) for line in response.text.splitlines()]


def chat(node: SimNode, **body: object) -> httpx.Response:
    body.setdefault("model", "llama3.2:3b")
    return httpx.post(node.url + "/api/chat", json=body)


def generate(node: SimNode, **body: object) -> httpx.Response:
    body.setdefault("model", "llama3.2:3b")
    return httpx.post(node.url + "/api/generate", json=body)


def user(text: str, **fields: object) -> list[dict]:
    return [{"role": "user", "content": text, **fields}]


def test_chat_streams_one_token_per_chunk_then_one_final_chunk(node: SimNode) -> None:
    chunks = ndjson(chat(node, messages=user("Why is the sky blue?")))
    *tokens, final = chunks
    assert [c["message"]["content"] for c in tokens] == expected_reply(
        "llama3.2:3b", "Why is the sky blue?", 24, seed=7
    )
    for chunk in chunks:
        assert chunk["model"] == "llama3.2:3b" and chunk["created_at"].endswith("Z")
        assert chunk["message"]["role"] == "assistant"
    assert [c["done"] for c in chunks].count(True) == 1 and final["done"] is True
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["done_reason"] == "stop"
    assert set(final) >= METRICS and final["eval_count"] == 24
    assert all(isinstance(final[name], int) and final[name] > 0 for name in METRICS)


def test_chat_echoes_the_model_name_exactly_as_sent(node: SimNode) -> None:
    body = chat(node, model="LLAMA3.2:3B", messages=user("hi"), stream=False).json()
    assert body["model"] == "LLAMA3.2:3B"
    assert body["message"]["content"] == "".join(expected_reply("llama3.2:3b", "hi", 24, seed=7))


def test_chat_without_streaming_returns_one_aggregated_object(node: SimNode) -> None:
    response = chat(node, messages=user("hello"), stream=False)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["done"] is True and body["done_reason"] == "stop"
    assert body["message"]["content"] == "".join(expected_reply("llama3.2:3b", "hello", 24, 7))
    assert set(body) >= METRICS


def test_content_follows_the_last_user_message_and_the_request_seed(node: SimNode) -> None:
    messages = [*user("first"), {"role": "assistant", "content": "ok"}, *user("second")]
    body = chat(node, messages=messages, stream=False, options={"seed": 42}).json()
    assert body["message"]["content"] == "".join(
        expected_reply("llama3.2:3b", "second", 24, seed=7, request_seed=42)
    )
    assert (
        body["prompt_eval_count"]
        > chat(node, messages=user("second"), stream=False).json()["prompt_eval_count"]
    )


def test_num_predict_caps_the_reply_with_done_reason_length(node: SimNode) -> None:
    *tokens, final = ndjson(chat(node, messages=user("count"), options={"num_predict": 5}))
    assert len(tokens) == 5 and final["eval_count"] == 5
    assert final["done_reason"] == "length"
    flat = generate(node, prompt="count", stream=False, options={"num_predict": 3}).json()
    assert flat["response"] == "".join(expected_reply("llama3.2:3b", "count", 3, seed=7))
    assert flat["done_reason"] == "length"


def test_a_num_predict_above_the_natural_length_stops_normally(node: SimNode) -> None:
    body = chat(node, messages=user("x"), stream=False, options={"num_predict": 100}).json()
    assert (body["done_reason"], body["eval_count"]) == ("stop", 24)


def test_generate_streams_response_chunks_and_a_final_context(node: SimNode) -> None:
    *tokens, final = ndjson(generate(node, prompt="Tell me a story"))
    assert [c["response"] for c in tokens] == expected_reply(
        "llama3.2:3b", "Tell me a story", 24, 7
    )
    assert final["response"] == "" and final["done"] is True and final["done_reason"] == "stop"
    assert len(final["context"]) == final["prompt_eval_count"] + final["eval_count"]
    assert set(final) >= METRICS


def test_generate_in_raw_mode_returns_no_context(node: SimNode) -> None:
    body = generate(node, prompt="raw text", raw=True, stream=False).json()
    assert "context" not in body and body["response"]
    bad = generate(node, prompt="x", raw=True, system="be brief")
    assert (bad.status_code, bad.json()["error"]) == (
        400,
        "raw mode does not support template, system, or context",
    )


def test_generate_counts_a_previous_context_into_the_prompt(node: SimNode) -> None:
    first = generate(node, prompt="one", stream=False).json()
    second = generate(node, prompt="two", context=first["context"], stream=False).json()
    assert second["prompt_eval_count"] > len(first["context"])
    assert second["context"][: len(first["context"])] == first["context"]


def test_empty_messages_or_prompt_load_the_model(node: SimNode) -> None:
    loaded = chat(node, model="qwen2.5:7b", messages=[], stream=True)
    assert loaded.headers["content-type"] == "application/json; charset=utf-8"
    body = loaded.json()
    assert body["message"] == {"role": "assistant", "content": ""}
    assert (body["done"], body["done_reason"]) == (True, "load")
    assert "qwen2.5:7b" in [m["name"] for m in httpx.get(node.url + "/api/ps").json()["models"]]
    assert generate(node, model="qwen2.5:7b").json()["done_reason"] == "load"


def test_keep_alive_zero_with_no_messages_unloads_the_model(node: SimNode) -> None:
    chat(node, model="qwen2.5:7b", messages=[])
    body = chat(node, model="qwen2.5:7b", messages=[], keep_alive=0).json()
    assert body["done_reason"] == "unload"
    assert "qwen2.5:7b" not in [m["name"] for m in httpx.get(node.url + "/api/ps").json()["models"]]
    assert generate(node, model="qwen2.5:7b", keep_alive="0").json()["done_reason"] == "unload"


def test_thinking_models_stream_thinking_before_content(node: SimNode) -> None:
    chunks = ndjson(chat(node, model="qwen3:4b", messages=user("think")))
    thinking = [c["message"]["thinking"] for c in chunks if "thinking" in c["message"]]
    assert thinking == expected_thinking("qwen3:4b", "think", 8, seed=7)
    assert all(c["message"]["content"] == "" for c in chunks[:8])
    assert chunks[-1]["eval_count"] == 8 + 24
    quiet = chat(node, model="qwen3:4b", messages=user("think"), think=False, stream=False).json()
    assert "thinking" not in quiet["message"] and quiet["eval_count"] == 24
    flat = generate(node, model="qwen3:4b", prompt="think", stream=False).json()
    assert flat["thinking"] == "".join(expected_thinking("qwen3:4b", "think", 8, seed=7))


def test_think_on_a_model_without_thinking_is_a_400(node: SimNode) -> None:
    response = chat(node, messages=user("x"), think=True)
    assert (response.status_code, response.json()) == (
        400,
        {"error": '"llama3.2:3b" does not support thinking'},
    )
    assert chat(node, model="qwen3:4b", messages=user("x"), think="sideways").status_code == 400
    assert chat(node, model="qwen3:4b", messages=user("x"), think="high").status_code == 200


def test_a_mentioned_tool_is_called_whole_with_object_arguments(node: SimNode) -> None:
    chunks = ndjson(chat(node, messages=user("Use get_weather for Paris"), tools=[WEATHER_TOOL]))
    call_chunk, final = chunks
    assert call_chunk["message"]["content"] == ""
    (call,) = call_chunk["message"]["tool_calls"]
    assert call["id"].startswith("call_") and len(call["id"]) == 13
    assert call["function"] == {
        "index": 0,
        "name": "get_weather",
        "arguments": {"city": "sim-city", "days": 1, "unit": "celsius"},
    }
    assert final["done_reason"] == "stop" and final["message"]["content"] == ""


def test_tools_not_mentioned_or_after_a_tool_result_give_plain_text(node: SimNode) -> None:
    plain = chat(node, messages=user("hello"), tools=[WEATHER_TOOL], stream=False).json()
    assert "tool_calls" not in plain["message"] and plain["message"]["content"]
    turn = [
        *user("Use get_weather"),
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "x"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    answer = chat(node, messages=turn, tools=[WEATHER_TOOL], stream=False).json()
    assert "tool_calls" not in answer["message"] and answer["message"]["content"]


def test_tools_on_a_model_without_the_capability_are_a_400(node: SimNode) -> None:
    response = chat(node, model="llava:7b", messages=user("x"), tools=[WEATHER_TOOL])
    assert response.status_code == 400
    assert response.json() == {
        "error": "registry.ollama.ai/library/llava:7b does not support tools"
    }


def test_images_need_raw_base64_and_a_vision_model(node: SimNode) -> None:
    ok = chat(node, model="llava:7b", messages=user("what is it?", images=[PNG_BYTES]))
    assert ok.status_code == 200
    data_uri = chat(
        node, model="llava:7b", messages=user("x", images=["data:image/png;base64," + PNG_BYTES])
    )
    assert data_uri.status_code == 400 and "illegal base64" in data_uri.json()["error"]
    assert chat(node, model="llava:7b", messages=user("x", images=["abc"])).status_code == 400
    not_vision = chat(node, messages=user("x", images=[PNG_BYTES]))
    assert not_vision.status_code == 400 and "does not support vision" in not_vision.text
    assert generate(node, model="llava:7b", prompt="x", images=[PNG_BYTES]).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/chat", None, 400, "missing request body"),
        ("/api/chat", "{not json", 400, None),
        ("/api/chat", {"model": "", "messages": []}, 400, "model is required"),
        ("/api/chat", {"model": "ghost", "messages": []}, 404, "model 'ghost' not found"),
        ("/api/generate", {"model": "ghost"}, 404, "model 'ghost' not found"),
        ("/api/generate", {"prompt": "x"}, 404, "model '' not found"),
        (
            "/api/chat",
            {"model": "all-minilm", "messages": []},
            400,
            '"all-minilm" does not support chat',
        ),
        (
            "/api/generate",
            {"model": "all-minilm", "prompt": "x"},
            400,
            '"all-minilm" does not support generate',
        ),
        (
            "/api/chat",
            {"model": "llama3.2:3b", "messages": [{"role": "user", "content": ["x"]}]},
            400,
            "json: cannot unmarshal array into Go struct field ChatRequest.messages.content "
            "of type string",
        ),
        (
            "/api/chat",
            {
                "model": "llama3.2:3b",
                "messages": [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                    }
                ],
            },
            400,
            None,
        ),
        ("/api/chat", {"model": "llama3.2:3b", "messages": [], "keep_alive": True}, 400, None),
        (
            "/api/chat",
            {"model": "llama3.2:3b", "messages": [], "keep_alive": "300"},
            400,
            'time: missing unit in duration "300"',
        ),
        ("/api/chat", {"model": "llama3.2:3b", "messages": user("x"), "format": "xml"}, 400, None),
        (
            "/api/chat",
            {"model": "llama3.2:3b", "messages": user("x"), "top_logprobs": 21},
            400,
            "top_logprobs must be between 0 and 20",
        ),
        (
            "/api/generate",
            {"model": "llama3.2:3b", "prompt": "x", "suffix": "y"},
            400,
            "registry.ollama.ai/library/llama3.2:3b does not support insert",
        ),
        (
            "/api/chat",
            {"model": "llama3.2:3b", "messages": [], "options": {"num_ctx": "big"}},
            500,
            'option "num_ctx" must be of type integer',
        ),
    ],
)
def test_bad_requests_get_ollamas_status_and_json_error(
    node: SimNode, path: str, body: object, status: int, message: str | None
) -> None:
    content = b"" if body is None else body.encode() if isinstance(body, str) else json.dumps(body)
    response = httpx.post(node.url + path, content=content)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    error = response.json()["error"]
    assert error if message is None else error == message


def test_keep_alive_accepts_numbers_floats_and_go_durations(node: SimNode) -> None:
    for keep_alive in (300, 12.5, "5m", "1h30m", "-1m", -1, "2s"):
        response = chat(node, messages=[], keep_alive=keep_alive)
        assert response.status_code == 200, keep_alive


def test_logprobs_are_added_to_content_chunks_when_asked(node: SimNode) -> None:
    chunks = ndjson(chat(node, messages=user("x"), logprobs=True, top_logprobs=2))
    first = chunks[0]
    assert first["logprobs"][0]["token"] == first["message"]["content"]
    assert first["logprobs"][0]["top_logprobs"]


def test_the_official_client_streams_and_aggregates_chat_and_generate(node: SimNode) -> None:
    client = ollama.Client(host=node.url)
    expected = "".join(expected_reply("llama3.2:3b", "hi", 24, seed=7))
    streamed = client.chat(model="llama3.2:3b", messages=user("hi"), stream=True)
    assert "".join(part.message.content for part in streamed) == expected
    reply = client.chat(model="llama3.2:3b", messages=user("hi"), options={"num_ctx": 4096})
    assert reply.message.content == expected and reply.done_reason == "stop"
    assert client.generate(model="llama3.2:3b", prompt="hi").response == expected
    tool_reply = client.chat(
        model="llama3.2:3b", messages=user("get_weather now"), tools=[WEATHER_TOOL]
    )
    assert tool_reply.message.tool_calls[0].function.arguments["city"] == "sim-city"
    thought = client.chat(model="qwen3:4b", messages=user("hi"), think=True)
    assert thought.message.thinking
    with pytest.raises(ollama.ResponseError) as error:
        client.chat(model="ghost", messages=user("hi"))
    assert error.value.status_code == 404


def test_format_json_makes_the_content_a_json_document(node: SimNode) -> None:
    body = chat(node, messages=user("as json"), format="json", stream=False).json()
    words = "".join(expected_reply("llama3.2:3b", "as json", 24, seed=7))
    assert json.loads(body["message"]["content"]) == {"reply": words}
    schema = {
        "type": "object",
        "required": ["name", "age"],
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    }
    flat = generate(node, prompt="person", format=schema, stream=False).json()
    assert json.loads(flat["response"]) == {"name": "sim-name", "age": 1}
