"""The pure Anthropic and Responses codecs, in process: requests in, Ollama bodies out;
Ollama lines in, the client's events out."""

from __future__ import annotations

import msgspec
import pytest
from herd.protocol.anthropic import AnthropicRequestError, decode_anthropic
from herd.protocol.anthropic_replies import MessageStream, message_reply
from herd.protocol.anthropic_requests import estimate_input_tokens, messages_to_ollama
from herd.protocol.openai import OpenAIRequestError
from herd.protocol.openai_upstream import (
    NdjsonFromSse,
    chat_request_from_ollama,
    ollama_chat_from_completion,
)
from herd.protocol.openai_upstream_completions import (
    GenerateNdjsonFromSse,
    completion_request_from_ollama,
    ollama_generate_from_completion,
)
from herd.protocol.responses import decode_responses, responses_to_ollama
from herd.protocol.responses_replies import ResponseStream, response_shell


def line(**fields: object) -> bytes:
    return msgspec.json.encode({"model": "m", "created_at": "", **fields})


def events(sse: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in sse.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n", 1)
            out.append((name[7:].decode(), msgspec.json.decode(data[6:])))
    return out


def anthropic_body(**fields: object) -> dict:
    request = decode_anthropic(msgspec.json.encode({"model": "m", "max_tokens": 9, **fields}))
    return messages_to_ollama(request, "m")


def test_tool_results_come_before_the_turns_text_and_are_named() -> None:
    body = anthropic_body(
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "let me check"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3 C",
                 "is_error": False},
                {"type": "text", "text": "and tomorrow?"}]},
        ],
    )  # fmt: skip
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "tool", "user"]
    call = body["messages"][1]["tool_calls"][0]
    assert call == {"id": "toolu_1", "function": {"index": 0, "name": "get_weather",
                                                  "arguments": {"city": "Oslo"}}}  # fmt: skip
    assert body["messages"][2] == {
        "role": "tool", "content": "-3 C", "tool_call_id": "toolu_1", "tool_name": "get_weather"
    }  # fmt: skip


def test_tool_choice_and_options() -> None:
    tools = [{"name": "a", "input_schema": {"type": "object"}}, {"name": "b"},
             {"type": "web_search_20250305", "name": "web_search"}]  # fmt: skip
    messages = [{"role": "user", "content": "x"}]
    offered = anthropic_body(messages=messages, tools=tools)["tools"]
    assert [t["function"]["name"] for t in offered] == ["a", "b"]
    only_b = anthropic_body(
        messages=messages, tools=tools, tool_choice={"type": "tool", "name": "b"}
    )
    assert [t["function"]["name"] for t in only_b["tools"]] == ["b"]
    assert "tools" not in anthropic_body(
        messages=messages, tools=tools, tool_choice={"type": "none"}
    )
    body = anthropic_body(messages=messages, stop_sequences=["END"], top_k=5,
                          thinking={"type": "disabled"})  # fmt: skip
    assert body["options"] == {"num_predict": 9, "stop": ["END"], "top_k": 5}
    assert body["think"] is False


def test_bad_anthropic_requests_name_the_field() -> None:
    with pytest.raises(AnthropicRequestError, match=r"messages\.0\.content\.0\.source"):
        anthropic_body(messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}])  # fmt: skip
    with pytest.raises(AnthropicRequestError, match="document blocks"):
        anthropic_body(messages=[{"role": "user", "content": [
            {"type": "document", "source": {}}]}])  # fmt: skip
    with pytest.raises(AnthropicRequestError, match="max_tokens"):
        decode_anthropic(b'{"model": "m", "max_tokens": "many", "messages": []}')


def test_message_stream_opens_and_closes_each_block_in_order() -> None:
    stream = MessageStream("m", input_tokens=7)
    out = stream.feed(line(message={"role": "assistant", "thinking": "hm"}, done=False))
    out += stream.feed(line(message={"role": "assistant", "content": "Hi"}, done=False))
    out += stream.feed(line(message={"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": {"x": 1}}}]}, done=False))  # fmt: skip
    out += stream.feed(line(done=True, done_reason="stop", prompt_eval_count=5, eval_count=3))
    seen = events(out)
    assert [name for name, _ in seen] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert seen[0][1]["message"]["usage"]["input_tokens"] == 7
    assert [e["index"] for n, e in seen if n == "content_block_start"] == [0, 1, 2]
    assert seen[9][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"x":1}'}
    assert seen[11][1]["delta"]["stop_reason"] == "tool_use"
    assert seen[11][1]["usage"]["output_tokens"] == 3
    assert stream.feed(line(done=True)) == b"" and stream.error_frame("late") == b""


def test_message_stream_error_line_is_an_error_event() -> None:
    stream = MessageStream("m")
    stream.feed(line(message={"role": "assistant", "content": "a"}, done=False))
    ((name, data),) = events(stream.feed(b'{"error":"out of memory"}'))
    assert name == "error" and data["error"] == {"type": "api_error", "message": "out of memory"}


def test_whole_message_reply_for_length_and_estimate() -> None:
    reply = msgspec.json.decode(message_reply(line(
        message={"role": "assistant", "content": "abc"}, done=True, done_reason="length",
        eval_count=2), "claude-x"))  # fmt: skip
    assert reply["stop_reason"] == "max_tokens" and reply["model"] == "claude-x"
    request = decode_anthropic(b'{"model":"m","messages":[{"role":"user","content":"12345678"}]}')
    assert estimate_input_tokens(request) == 2


def test_a_nodes_count_spelled_as_a_float_or_a_string_is_still_a_count() -> None:
    from herd.protocol.ollama_replies import decode_chat_chunk, decode_generate_chunk

    chunk = b'{"model":"m","message":{"role":"assistant","content":"a"},"done":true,'
    chunk += b'"eval_count":2.0,"prompt_eval_count":"3"}'
    chat = decode_chat_chunk(chunk)
    assert (chat.eval_count, chat.prompt_eval_count) == (2, 3)
    reply = msgspec.json.decode(message_reply(chunk, "claude-x"))
    assert reply["usage"]["output_tokens"] == 2
    generate = decode_generate_chunk(b'{"model":"m","response":"a","done":true,"eval_count":4.0}')
    assert generate.eval_count == 4


def test_responses_items_become_one_conversation() -> None:
    request = decode_responses(msgspec.json.encode({
        "model": "m", "instructions": "be nice", "input": [
            {"role": "developer", "content": "rules"},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": ""},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
        ]}))  # fmt: skip
    history = [{"role": "user", "content": "earlier"}]
    messages = responses_to_ollama(request, "m", history)["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "system", "user", "assistant",
                                             "tool"]  # fmt: skip
    assert [c["function"]["name"] for c in messages[4]["tool_calls"]] == ["f", "g"]
    assert messages[4]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert messages[5]["tool_name"] == "f"


def test_bad_responses_requests_name_the_field() -> None:
    for body, param in [
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        (
            {
                "model": "m",
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": "https://x"}]}
                ],
            },
            "input[0].content[0].image_url",
        ),
        ({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format"),
    ]:
        with pytest.raises(OpenAIRequestError) as error:
            responses_to_ollama(decode_responses(msgspec.json.encode(body)), "m", [])
        assert error.value.param == param


def test_response_stream_numbers_every_event_and_reports_done() -> None:
    kept = []
    stream = ResponseStream(response_shell("resp_1", "m", {}), kept.append)
    out = stream.feed(line(message={"role": "assistant", "content": "Hi"}, done=False))
    out += stream.feed(line(message={"role": "assistant", "content": " there"}, done=False))
    out += stream.feed(line(done=True, done_reason="length", prompt_eval_count=4, eval_count=2))
    seen = events(out)
    assert [e["sequence_number"] for _, e in seen] == list(range(len(seen)))
    assert seen[-1][0] == "response.incomplete"
    assert seen[-1][1]["response"]["output"][0]["content"][0]["text"] == "Hi there"
    assert kept == [{"role": "assistant", "content": "Hi there"}]


def test_completions_upstream_round_trip() -> None:
    request = completion_request_from_ollama(
        {"model": "m", "prompt": "Once", "system": "Tell a story.",
         "options": {"num_predict": 3, "stop": ["."], "top_k": 4}}
    )  # fmt: skip
    assert request.prompt == "Tell a story.\n\nOnce" and request.max_tokens == 3
    assert request.stop == ["."] and request.top_k == 4
    translator = GenerateNdjsonFromSse("m", prompt_estimate=9)
    sse = (
        b'data: {"id":"c","object":"text_completion","created":1,"model":"m",'
        b'"choices":[{"text":" upon","index":0,"finish_reason":null}]}\n\n'
        b'data: {"id":"c","object":"text_completion","created":1,"model":"m",'
        b'"choices":[{"text":"","index":0,"finish_reason":"length"}]}\n\ndata: [DONE]\n\n'
    )
    lines = [msgspec.json.decode(x) for x in translator.feed(sse).splitlines()]
    assert lines[0]["response"] == " upon" and lines[-1]["done"]
    assert lines[-1]["done_reason"] == "length"
    assert (lines[-1]["prompt_eval_count"], lines[-1]["eval_count"]) == (9, 1)


def test_an_openai_servers_logprobs_become_ollamas_entries() -> None:
    """Asked for logprobs, an OpenAI server's answer carries them back in Ollama's shape
    (whole and streamed, chat and legacy completions); ``bytes`` the server left null is
    left out, a missing value is 0, a choice without logprobs adds none."""
    asked = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": True}
    request = chat_request_from_ollama({**asked, "top_logprobs": 2})
    assert request.logprobs is True and request.top_logprobs == 2
    top = [{"token": "Hi", "logprob": -0.5, "bytes": None}, {"token": "Yo", "logprob": -1.5}]
    entry = {"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": top}
    whole = ollama_chat_from_completion(
        msgspec.json.encode(
            {"id": "c", "created": 1, "model": "m", "choices": [{"index": 0,
             "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop",
             "logprobs": {"content": [entry, {"token": "!"}]}}]}
        ),
        "m",
    )  # fmt: skip
    assert whole["logprobs"] == [
        {"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": [
            {"token": "Hi", "logprob": -0.5}, {"token": "Yo", "logprob": -1.5}]},
        {"token": "!", "logprob": 0.0},
    ]  # fmt: skip
    translator = NdjsonFromSse("m")
    chunk = {"id": "c", "created": 1, "model": "m", "choices": [
        {"index": 0, "delta": {"content": "Hi"}, "logprobs": {"content": [entry]}}]}  # fmt: skip
    plain = {"id": "c", "created": 1, "model": "m", "choices": [
        {"index": 0, "delta": {"content": "!"}, "logprobs": None}]}  # fmt: skip
    end = {"id": "c", "created": 1, "model": "m", "choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
    sse = b"".join(b"data: " + msgspec.json.encode(c) + b"\n\n" for c in (chunk, plain, end))
    out = translator.feed(sse + b"data: [DONE]\n\n")
    lines = [msgspec.json.decode(x) for x in out.splitlines()]
    assert lines[0]["logprobs"] == whole["logprobs"][:1] and "logprobs" not in lines[1]
    assert lines[-1]["done"] is True

    legacy = completion_request_from_ollama({"model": "m", "prompt": "Once", "logprobs": True,
                                             "top_logprobs": 2})  # fmt: skip
    assert legacy.logprobs == 2
    assert completion_request_from_ollama({"model": "m", "prompt": "Once"}).logprobs is None
    shape = {
        "tokens": [" upon", " a"],
        "token_logprobs": [-0.1, None],
        "top_logprobs": [{" upon": -0.1, " in": -2.0}, None],
        "text_offset": [0, 5],
    }
    reply = ollama_generate_from_completion(
        msgspec.json.encode({"id": "c", "created": 1, "model": "m", "choices": [
            {"text": " upon a", "index": 0, "logprobs": shape, "finish_reason": "length"}]}),
        "m",
    )  # fmt: skip
    assert reply["logprobs"] == [
        {"token": " upon", "logprob": -0.1, "top_logprobs": [
            {"token": " upon", "logprob": -0.1}, {"token": " in", "logprob": -2.0}]},
        {"token": " a", "logprob": 0.0},
    ]  # fmt: skip
    stream = GenerateNdjsonFromSse("m")
    event = {"id": "c", "created": 1, "model": "m", "choices": [
        {"text": " upon", "index": 0, "logprobs": {**shape, "tokens": [" upon"]}}]}  # fmt: skip
    first = msgspec.json.decode(stream.feed(b"data: " + msgspec.json.encode(event) + b"\n\n"))
    assert first["response"] == " upon" and first["logprobs"] == reply["logprobs"][:1]
