"""Golden streams through the codecs, both directions.

``golden/ollama_*.ndjson`` are NDJSON streams recorded from the emulator's ``/api/chat`` and
``/api/generate``; each goes through the OpenAI stream translator and must give the
matching ``.sse`` file. ``golden/openai_*.sse`` are OpenAI-style SSE streams (split tool-call
fragments, reasoning, usage, a mid-stream error); each goes through the SSE-to-NDJSON
translator and must give the matching ``.ndjson`` file. Ids and durations are random or
wall-clock, so they are normalised before the comparison.

Regenerate after an intended change with ``HERD_REGEN_GOLDEN=1 pytest`` and read the diff.
"""

from __future__ import annotations

import base64
import os
import re
import struct
from pathlib import Path

import msgspec
import pytest
from herd.protocol.openai_replies import chat_completion, embedding_list
from herd.protocol.openai_stream import ChatStream, CompletionStream
from herd.protocol.openai_upstream import NdjsonFromSse

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("HERD_REGEN_GOLDEN") == "1"

TO_SSE = {
    "ollama_chat_text": ("chat", {}),
    "ollama_chat_thinking_tools": ("chat", {"include_usage": True}),
    "ollama_chat_length": ("chat", {"include_usage": True}),
    "ollama_chat_error": ("chat", {}),
    "ollama_generate": ("completion", {"include_usage": True}),
}
TO_NDJSON = ["openai_chat_tools", "openai_chat_reasoning", "openai_chat_error"]


def _ollama_to_sse(name: str) -> bytes:
    kind, options = TO_SSE[name]
    maker = ChatStream if kind == "chat" else CompletionStream
    stream = maker("my-model", **options)
    out = b""
    for line in (GOLDEN / f"{name}.ndjson").read_bytes().splitlines():
        out += stream.feed(line)
    if not stream.finished:
        out += stream.error_frame("node ended the stream early")
    return re.sub(rb'"id":"(chatcmpl|cmpl)-[0-9a-f]{32}"', rb'"id":"\1-ID"', out)


def _sse_to_ollama(name: str) -> bytes:
    translator = NdjsonFromSse("my-model")
    raw = (GOLDEN / f"{name}.sse").read_bytes()
    out = b""
    for start in range(0, len(raw), 7):  # arbitrary splits, as bytes arrive off a socket
        out += translator.feed(raw[start : start + 7])
    out += translator.close()
    return re.sub(rb'"total_duration":\d+', b'"total_duration":0', out)


def _check(actual: bytes, path: Path) -> None:
    if REGENERATE:
        path.write_bytes(actual)
    assert actual == path.read_bytes(), f"{path.name} differs"


@pytest.mark.parametrize("name", sorted(TO_SSE))
def test_recorded_ollama_stream_gives_the_golden_sse(name: str) -> None:
    _check(_ollama_to_sse(name), GOLDEN / f"{name}.sse")


@pytest.mark.parametrize("name", TO_NDJSON)
def test_recorded_openai_stream_gives_the_golden_ndjson(name: str) -> None:
    _check(_sse_to_ollama(name), GOLDEN / f"{name}.ndjson")


def _events(sse: bytes) -> list[dict]:
    return [
        msgspec.json.decode(block[6:])
        for block in sse.split(b"\n\n")
        if block.startswith(b"data: {")
    ]


def test_sse_framing_is_data_lines_with_one_blank_line_each() -> None:
    for name in TO_SSE:
        sse = _ollama_to_sse(name)
        assert sse.endswith(b"\n\n")
        for block in sse[:-2].split(b"\n\n"):
            assert block.startswith(b"data: ") and b"\n" not in block


def test_every_chat_event_shares_id_created_and_model() -> None:
    events = _events(_ollama_to_sse("ollama_chat_thinking_tools"))
    assert len({(e["id"], e["created"], e["model"]) for e in events}) == 1
    assert events[0]["model"] == "my-model"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"


def test_finish_reason_appears_once_and_usage_is_last() -> None:
    for name in ("ollama_chat_thinking_tools", "ollama_chat_length"):
        events = _events(_ollama_to_sse(name))
        finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
        assert len(finishes) == 1
        assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 0
        assert all(e["usage"] is None for e in events[:-1])
    tools = _events(_ollama_to_sse("ollama_chat_thinking_tools"))
    assert [c["finish_reason"] for e in tools for c in e["choices"]][-1] == "tool_calls"
    length = _events(_ollama_to_sse("ollama_chat_length"))
    assert [c["finish_reason"] for e in length for c in e["choices"]][-1] == "length"


def test_thinking_never_reaches_content() -> None:
    events = _events(_ollama_to_sse("ollama_chat_thinking_tools"))
    deltas = [c["delta"] for e in events for c in e["choices"]]
    thinking = "".join(d.get("reasoning_content", "") for d in deltas)
    assert thinking and not any(d.get("content") for d in deltas)


def test_a_mid_stream_error_ends_without_done() -> None:
    sse = _ollama_to_sse("ollama_chat_error")
    assert b"[DONE]" not in sse
    assert _events(sse)[-1] == {
        "error": {
            "message": "CUDA error: out of memory",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def test_joined_tool_fragments_become_whole_ollama_calls() -> None:
    lines = [msgspec.json.decode(line) for line in _sse_to_ollama("openai_chat_tools").split()]
    calls = [call for line in lines for call in line.get("message", {}).get("tool_calls", [])]
    assert [c["function"]["arguments"] for c in calls] == [{"city": "Paris"}, {"zone": "CET"}]
    assert [c["id"] for c in calls] == ["call_ab12cd34", "call_ef56gh78"]
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert lines[-1]["prompt_eval_count"] == 82 and lines[-1]["eval_count"] == 17


def test_reasoning_field_can_be_renamed_or_dropped() -> None:
    lines = (GOLDEN / "ollama_chat_thinking_tools.ndjson").read_bytes().splitlines()
    for field, present in (("reasoning", "reasoning"), ("drop", None)):
        stream = ChatStream("m", reasoning_field=field)
        deltas = [
            c["delta"] for e in _events(b"".join(map(stream.feed, lines))) for c in e["choices"]
        ]
        assert deltas[0]["role"] == "assistant"
        keys = {key for delta in deltas for key in delta}
        assert "reasoning_content" not in keys
        assert (present in keys) if present else "reasoning" not in keys


def test_whole_replies_translate_like_streams() -> None:
    body = (
        b'{"model":"qwen3:4b","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant",'
        b'"content":"","thinking":"hm","tool_calls":[{"function":{"name":"f","arguments":'
        b'{"b":1,"a":"\xc3\xa9"}}}]},"done":true,"done_reason":"stop","prompt_eval_count":3,'
        b'"eval_count":4}'
    )
    reply = msgspec.json.decode(chat_completion(body, "my-model", "reasoning"))
    message = reply["choices"][0]["message"]
    assert message["content"] is None and message["reasoning"] == "hm"
    assert message["tool_calls"][0]["function"]["arguments"] == '{"b":1,"a":"é"}'
    assert message["tool_calls"][0]["id"].startswith("call_")
    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    assert reply["created"] == 1735689600 and reply["model"] == "my-model"
    assert reply["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    vectors = b'{"model":"e","embeddings":[[0.5,-1.0]],"prompt_eval_count":2}'
    as_base64 = msgspec.json.decode(embedding_list(vectors, "e", "base64"))
    assert (
        as_base64["data"][0]["embedding"]
        == base64.b64encode(struct.pack("<2f", 0.5, -1.0)).decode()
    )
