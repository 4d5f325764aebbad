"""Ollama ``/api/chat`` answers as OpenAI ``response`` objects, whole or streamed (pure).

The output items are, in order: a ``reasoning`` item when the model thought, a ``message``
with one ``output_text`` part when it wrote text (or wrote nothing and called nothing), and
one ``function_call`` item per tool call (``arguments`` a JSON string). ``status`` is
``completed``, or ``incomplete`` with ``incomplete_details.reason: "max_output_tokens"``
when the node stopped for length.

A stream goes through :class:`ResponseStream`: ``response.created`` and
``response.in_progress`` first; per item ``response.output_item.added``, its deltas
(``response.reasoning_text.delta``; ``response.content_part.added`` then
``response.output_text.delta``; ``response.function_call_arguments.delta``), their
``.done`` events and ``response.output_item.done``; at the end ``response.completed`` (or
``response.incomplete``) with the whole object and its usage. Every event carries a
``sequence_number``. A node's error becomes an ``error`` event and ``response.failed``.

Example:
    >>> shell = response_shell("resp_1", "m", {})
    >>> body = b'{"message":{"role":"assistant","content":"Hi"},"done":true,"eval_count":1}'
    >>> msgspec.json.decode(response_reply(body, shell)[0])["output"][0]["content"][0]["text"]
    'Hi'
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import msgspec

from herd.protocol.ollama_replies import (
    OllamaChatChunk,
    OllamaToolCall,
    as_chat_reply,
    decode_chat_chunk,
)
from herd.protocol.openai_replies import arguments_json, new_call_id

__all__ = ["ResponseStream", "new_response_id", "response_reply", "response_shell"]

_encode = msgspec.json.encode
_UNREADABLE = "the node sent a line that is not valid JSON"


def _hex_id(prefix: str) -> str:
    return prefix + os.urandom(24).hex()


def new_response_id() -> str:
    """A response id in OpenAI's style: ``resp_`` + 48 hex digits."""
    return _hex_id("resp_")


def response_shell(response_id: str, model: str, echo: dict[str, Any]) -> dict[str, Any]:
    """The ``response`` object before any output: the request's settings echoed back.

    Args:
        response_id: The id (see :func:`new_response_id`).
        model: The model name the client sent.
        echo: Request fields to echo (``instructions``, ``tools``, ``temperature`` ...).
    """
    shell: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": {},
    }
    shell.update({key: value for key, value in echo.items() if value is not None})
    return shell


def _usage(prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + output_tokens,
    }


def _finish(shell: dict[str, Any], output: list[dict[str, Any]], chunk: OllamaChatChunk) -> None:
    shell["output"] = output
    shell["usage"] = _usage(chunk.prompt_eval_count, chunk.eval_count)
    if chunk.done_reason == "length":
        shell["status"] = "incomplete"
        shell["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        shell["status"] = "completed"


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [_text_part(text)] if status == "completed" else []
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(call: OllamaToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": _hex_id("fc_"),
        "call_id": call.id or new_call_id(),
        "name": call.function.name,
        "arguments": arguments_json(call.function.arguments or {}),
        "status": status,
    }


def _assistant(text: str, thinking: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The Ollama message a later ``previous_response_id`` turn sends back."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = [
            {
                "id": call["call_id"],
                "function": {
                    "index": index,
                    "name": call["name"],
                    "arguments": msgspec.json.decode(call["arguments"] or "{}"),
                },
            }
            for index, call in enumerate(calls)
        ]
    return message


def response_reply(body: bytes | Any, shell: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """A whole Ollama reply as a ``response`` object (encoded), and the assistant message.

    Args:
        body: The node's JSON reply (``stream: false``).
        shell: From :func:`response_shell`; filled in place.

    Returns:
        The encoded response, and the reply as an Ollama message (for the store).
    """
    reply = as_chat_reply(body)
    message = reply.message
    text = message.content if message else ""
    thinking = message.thinking if message else ""
    calls = [_call_item(call) for call in (message.tool_calls if message else [])]
    output: list[dict[str, Any]] = []
    if thinking:
        output.append(_reasoning_item(_hex_id("rs_"), thinking))
    if text or not calls:
        output.append(_message_item(_hex_id("msg_"), text))
    output += calls
    _finish(shell, output, reply)
    return _encode(shell), _assistant(text, thinking, calls)


class ResponseStream:
    """Translates one ``/api/chat`` NDJSON stream into Responses API SSE events.

    Args:
        shell: From :func:`response_shell`; it becomes the final object.
        on_done: Called with the reply as an Ollama message once the stream completed
            (the route keeps it for ``previous_response_id``).
    """

    __slots__ = (
        "_calls",
        "_delta_head",
        "_on_done",
        "_open",
        "_open_kind",
        "_output",
        "_sequence",
        "_text",
        "_texts",
        "_thinking",
        "finished",
        "shell",
    )

    def __init__(
        self,
        shell: dict[str, Any],
        on_done: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.shell = shell
        self._open_kind = ""  # the type of the item being grown ("reasoning", "message")
        self.finished = False
        self._on_done = on_done
        self._sequence = 0
        self._output: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None  # the reasoning or message item being grown
        self._texts: list[str] = []
        self._text = ""
        self._thinking = ""
        self._calls: list[dict[str, Any]] = []
        self._delta_head = b""

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": kind, **payload, "sequence_number": self._sequence}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(payload) + b"\n\n"

    def feed(self, line: bytes) -> bytes:
        """The SSE bytes for one NDJSON line."""
        if self.finished:
            return b""
        try:
            chunk = decode_chat_chunk(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._failed(_UNREADABLE)
        if chunk.error is not None:
            return self._failed(chunk.error or "the node reported an error")
        message = chunk.message
        if (  # the hot path: one more text token of the open message
            self._open_kind == "message"
            and message is not None
            and not chunk.done
            and not message.thinking
            and not message.tool_calls
        ):
            text = message.content
            if not text:
                return b""
            self._texts.append(text)
            seq = self._sequence
            self._sequence = seq + 1
            return self._delta_head + _encode(text) + b',"sequence_number":%d}\n\n' % seq
        out = b""
        if self._sequence == 0:
            shell = _encode(self.shell)  # once for both events
            for kind in (b"response.created", b"response.in_progress"):
                out += (
                    b"event: " + kind + b'\ndata: {"type":"' + kind + b'","response":' + shell
                    + b',"sequence_number":%d}\n\n' % self._sequence
                )  # fmt: skip
                self._sequence += 1
        if message is not None:
            if message.thinking:
                out += self._grow("reasoning", message.thinking)
            if message.content:
                out += self._grow("message", message.content)
            for call in message.tool_calls:
                out += self._call(call)
        if chunk.done:
            out += self._done(chunk)
        return out

    def error_frame(self, message: str) -> bytes:
        """The in-band error for a stream that broke after it started."""
        if self.finished:
            return b""
        return self._failed(message)

    def _grow(self, kind: str, text: str) -> bytes:
        out = b""
        if self._open_kind != kind:
            out = self._close() + self._open_item(kind)
        self._texts.append(text)
        seq = self._sequence
        self._sequence = seq + 1
        return out + self._delta_head + _encode(text) + b',"sequence_number":%d}\n\n' % seq

    def _open_item(self, kind: str) -> bytes:
        index = len(self._output)
        if kind == "reasoning":
            item = {"type": "reasoning", "id": _hex_id("rs_"), "summary": [], "content": []}
            delta_type = "response.reasoning_text.delta"
        else:
            item = _message_item(_hex_id("msg_"), "", "in_progress")
            delta_type = "response.output_text.delta"
        self._open = item
        self._open_kind = kind
        self._texts = []
        out = self._event("response.output_item.added", {"output_index": index, "item": item})
        place = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if kind == "message":
            out += self._event("response.content_part.added", {**place, "part": _text_part("")})
        head = _encode({"type": delta_type, **place})[:-1]  # left open for the delta
        self._delta_head = (
            b"event: " + delta_type.encode() + b"\ndata: " + head + b',"logprobs":[],"delta":'
            if kind == "message"
            else b"event: " + delta_type.encode() + b"\ndata: " + head + b',"delta":'
        )
        return out

    def _close(self) -> bytes:
        item = self._open
        if item is None:
            return b""
        self._open = None
        self._open_kind = ""
        index = len(self._output)
        text = "".join(self._texts)
        place = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if item["type"] == "reasoning":
            self._thinking += text
            out = self._event("response.reasoning_text.done", {**place, "text": text})
            done = _reasoning_item(item["id"], text)
        else:
            self._text += text
            out = self._event("response.output_text.done", {**place, "text": text, "logprobs": []})
            out += self._event("response.content_part.done", {**place, "part": _text_part(text)})
            done = _message_item(item["id"], text)
        self._output.append(done)
        return out + self._event("response.output_item.done", {"output_index": index, "item": done})

    def _call(self, call: OllamaToolCall) -> bytes:
        out = self._close()
        index = len(self._output)
        done = _call_item(call)
        added = {**done, "arguments": "", "status": "in_progress"}
        out += self._event("response.output_item.added", {"output_index": index, "item": added})
        place = {"item_id": done["id"], "output_index": index}
        arguments = done["arguments"]
        out += self._event("response.function_call_arguments.delta", {**place, "delta": arguments})
        out += self._event(
            "response.function_call_arguments.done",
            {**place, "name": done["name"], "arguments": arguments},
        )
        self._output.append(done)
        self._calls.append(done)
        return out + self._event("response.output_item.done", {"output_index": index, "item": done})

    def _done(self, chunk: OllamaChatChunk) -> bytes:
        out = b""
        if not self._output and self._open is None:
            out += self._open_item("message")  # an empty answer is still one message
        out += self._close()
        self.finished = True
        _finish(self.shell, self._output, chunk)
        completed = self.shell["status"] == "completed"
        kind = "response.completed" if completed else "response.incomplete"
        out += self._event(kind, {"response": self.shell})
        if self._on_done is not None:
            self._on_done(_assistant(self._text, self._thinking, self._calls))
        return out

    def _failed(self, message: str) -> bytes:
        self.finished = True
        out = self._event("error", {"code": "server_error", "message": message, "param": None})
        self.shell["status"] = "failed"
        self.shell["error"] = {"code": "server_error", "message": message}
        self.shell["output"] = self._output
        return out + self._event("response.failed", {"response": self.shell})
