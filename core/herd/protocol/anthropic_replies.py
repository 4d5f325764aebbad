"""Ollama ``/api/chat`` answers as Anthropic messages, whole or streamed (pure: no I/O).

A whole reply becomes one ``message`` object; a stream goes through :class:`MessageStream`,
one per stream, which turns each NDJSON line into Anthropic's SSE events:
``message_start`` and a ``ping`` first; then content blocks, each opened by
``content_block_start``, grown by ``content_block_delta`` (``thinking_delta``,
``text_delta``, ``input_json_delta``) and closed by ``content_block_stop``; at the end one
``message_delta`` (``stop_reason``, ``stop_sequence``, ``usage``) and ``message_stop``.
A node's ``{"error": ...}`` line becomes an ``error`` event and ends the stream.

``stop_reason`` is ``tool_use`` when the model called a tool, ``max_tokens`` when Ollama
stopped for length, else ``end_turn`` (Ollama does not say which stop sequence matched).

Example:
    >>> stream = MessageStream("m")
    >>> out = stream.feed(b'{"message":{"role":"assistant","content":"Hi"},"done":false}')
    >>> out.split(b"\\n")[0]
    b'event: message_start'
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from herd.protocol.anthropic import error_event
from herd.protocol.ollama_replies import (
    OllamaChatChunk,
    OllamaToolCall,
    as_chat_reply,
    decode_chat_chunk,
)

__all__ = ["MessageStream", "message_reply", "new_message_id", "stop_reason"]

_encode = msgspec.json.encode
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_UNREADABLE = "the node sent a line that is not valid JSON"


def _random(count: int) -> str:
    return "".join(_ALPHABET[b % 62] for b in os.urandom(count))


def new_message_id() -> str:
    """A message id in Anthropic's style: ``msg_`` + 24 alphanumerics."""
    return "msg_" + _random(24)


def _tool_id(call: OllamaToolCall) -> str:
    return call.id or "toolu_" + _random(24)


def stop_reason(done_reason: str | None, saw_tool: bool) -> str:
    """Anthropic ``stop_reason`` for an Ollama ``done_reason``."""
    if saw_tool:
        return "tool_use"
    return "max_tokens" if done_reason == "length" else "end_turn"


def _usage(prompt_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def message_reply(body: bytes | Any, model: str, message_id: str = "") -> bytes:
    """A whole Ollama ``/api/chat`` reply as an Anthropic ``message`` (encoded).

    Args:
        body: The node's JSON reply (``stream: false``).
        model: The model name the client sent (echoed back).
        message_id: The id to use (a new one when empty).
    """
    reply = as_chat_reply(body)
    message = reply.message
    content: list[dict[str, Any]] = []
    calls = message.tool_calls if message else []
    if message and message.thinking:
        content.append({"type": "thinking", "thinking": message.thinking, "signature": ""})
    if message and message.content:
        content.append({"type": "text", "text": message.content})
    for call in calls:
        content.append(
            {
                "type": "tool_use",
                "id": _tool_id(call),
                "name": call.function.name,
                "input": call.function.arguments or {},
            }
        )
    out = {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(reply.done_reason, bool(calls)),
        "stop_sequence": None,
        "usage": _usage(reply.prompt_eval_count, reply.eval_count),
    }
    return _encode(out)


def _event(name: bytes, payload: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"


_PING = _event(b"ping", b'{"type":"ping"}')
_STOP = _event(b"message_stop", b'{"type":"message_stop"}')


class MessageStream:
    """Translates one ``/api/chat`` NDJSON stream into Anthropic SSE events.

    Args:
        model: The model name the client sent (echoed in ``message_start``).
        input_tokens: The router's estimate, for ``message_start`` (the node's count comes
            in ``message_delta``).
        message_id: The message id (a new one when empty).
    """

    __slots__ = (
        "_head",
        "_index",
        "_input_tokens",
        "_open",
        "_saw_tool",
        "finished",
        "id",
        "model",
    )

    def __init__(self, model: str, input_tokens: int = 0, message_id: str = "") -> None:
        self.id = message_id or new_message_id()
        self.model = model
        self.finished = False
        self._input_tokens = input_tokens
        self._index = -1  # the index of the last block opened
        self._open = ""  # the kind of the open block: "text", "thinking" or ""
        self._saw_tool = False
        self._head = b""  # the open block's delta event, up to its text

    def feed(self, line: bytes) -> bytes:
        """The SSE bytes for one NDJSON line (``b""`` when it carries nothing new)."""
        if self.finished:
            return b""
        try:
            chunk = decode_chat_chunk(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._failed(_UNREADABLE)
        if chunk.error is not None:
            return self._failed(chunk.error or "the node reported an error")
        out = self._start() if self._index == -1 and not self._open else b""
        message = chunk.message
        if message is not None:
            if message.thinking:
                out += self._delta("thinking", b"thinking_delta", b"thinking", message.thinking)
            if message.content:
                out += self._delta("text", b"text_delta", b"text", message.content)
            for call in message.tool_calls:
                out += self._tool_block(call)
        if chunk.done:
            out += self._done(chunk)
        return out

    def error_frame(self, message: str) -> bytes:
        """The in-band ``error`` event for a stream that broke after it started."""
        if self.finished:
            return b""
        return self._failed(message)

    def _start(self) -> bytes:
        self._index = -1
        self._open = "-"  # started, no block open yet
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(self._input_tokens, 1),
        }
        start = _encode({"type": "message_start", "message": message})
        return _event(b"message_start", start) + _PING

    def _close(self) -> bytes:
        if self._open in ("", "-"):
            return b""
        self._open = "-"
        stop = b'{"type":"content_block_stop","index":' + str(self._index).encode() + b"}"
        return _event(b"content_block_stop", stop)

    def _open_block(self, block: dict[str, Any], kind: str) -> bytes:
        out = self._close()
        self._index += 1
        self._open = kind
        payload = {"type": "content_block_start", "index": self._index, "content_block": block}
        return out + _event(b"content_block_start", _encode(payload))

    def _delta(self, kind: str, delta_type: bytes, field: bytes, text: str) -> bytes:
        if self._open == kind:  # the hot path: one more token of the open block
            return self._head + _encode(text) + b"}}\n\n"
        empty: dict[str, Any] = {"type": kind, kind: ""}
        if kind == "thinking":
            empty["signature"] = ""
        out = self._open_block(empty, kind)
        self._head = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(self._index).encode()
            + b',"delta":{"type":"'
            + delta_type
            + b'","'
            + field
            + b'":'
        )
        return out + self._head + _encode(text) + b"}}\n\n"

    def _tool_block(self, call: OllamaToolCall) -> bytes:
        self._saw_tool = True
        block = {"type": "tool_use", "id": _tool_id(call), "name": call.function.name, "input": {}}
        out = self._open_block(block, "tool_use")
        arguments = _encode(call.function.arguments or {}).decode()
        delta = {
            "type": "content_block_delta",
            "index": self._index,
            "delta": {"type": "input_json_delta", "partial_json": arguments},
        }
        return out + _event(b"content_block_delta", _encode(delta)) + self._close()

    def _done(self, chunk: OllamaChatChunk) -> bytes:
        out = self._close()
        self.finished = True
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason(chunk.done_reason, self._saw_tool),
                "stop_sequence": None,
            },
            "usage": _usage(chunk.prompt_eval_count, chunk.eval_count),
        }
        return out + _event(b"message_delta", _encode(delta)) + _STOP

    def _failed(self, message: str) -> bytes:
        self.finished = True
        return error_event(message)
