"""Ollama NDJSON streams to OpenAI SSE streams: one stateful translator per stream (pure).

A translator takes each NDJSON line the node sends and returns the SSE bytes for the
client (possibly none, possibly several events). It follows ``openai-api.md`` section 9.4:
the first event carries ``role: "assistant"``; tool calls become ``delta.tool_calls``
fragments with ``index``, ``id``, ``type`` and ``function``; ``finish_reason`` comes once, on
its own event (``stop``, ``length`` or ``tool_calls``); ``stream_options.include_usage`` adds
a usage event with ``choices: []`` (and ``"usage": null`` on every other event); the stream
ends with ``data: [DONE]``. An Ollama ``{"error": ...}`` line becomes an SSE error event
with no ``[DONE]`` after it.

Every event of a stream shares one ``id``/``created``/``model`` prefix, so it is encoded once;
a plain content token is spliced in with a single string encode (the hot path).

Example:
    >>> stream = ChatStream("m")
    >>> stream.feed(b'{"message":{"role":"assistant","content":"Hi"},"done":false}')[:6]
    b'data: '
"""

from __future__ import annotations

from typing import Any

import msgspec

from herd.protocol.ollama_replies import (
    OllamaChatChunk,
    OllamaGenerateChunk,
    OllamaMessage,
    decode_chat_chunk,
    decode_generate_chunk,
)
from herd.protocol.openai import (
    DONE_EVENT,
    ChunkDelta,
    StreamFunctionCall,
    StreamToolCall,
    Usage,
    error_event,
)
from herd.protocol.openai_replies import (
    arguments_json,
    chat_logprobs,
    completion_logprobs,
    finish_reason,
    new_call_id,
    new_id,
    unix_time,
)

__all__ = ["ChatStream", "CompletionStream"]

_encode = msgspec.json.encode
_UNREADABLE = "the node sent a line that is not valid JSON"


class _SseStream:
    """What chat and completion streams share: the prefix, the tail, usage, [DONE]."""

    __slots__ = ("_head", "_include_usage", "_prefix", "_tail_end", "finished", "id", "model")

    object_name = b""
    choice_open = b""

    def __init__(self, model: str, id_prefix: str, include_usage: bool) -> None:
        self.id = new_id(id_prefix)
        self.model = model
        self._include_usage = include_usage
        self._prefix = b""
        self._head = b""
        self._tail_end = b"}]" + (b',"usage":null' if include_usage else b"") + b"}\n\n"
        self.finished = False

    def _start(self, created_at: str) -> None:
        self._prefix = (
            b'data: {"id":"'
            + self.id.encode()
            + b'","object":"'
            + self.object_name
            + b'","created":'
            + str(unix_time(created_at)).encode()
            + b',"model":'
            + _encode(self.model)
            + b',"system_fingerprint":"fp_herd",'
        )
        self._head = self._prefix + self.choice_open

    def _closing(self, finish: str, prompt_tokens: int, completion_tokens: int) -> bytes:
        self.finished = True
        out = self._finish_event(finish)
        if self._include_usage:
            usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
            out += self._prefix + b'"choices":[],"usage":' + _encode(usage) + b"}\n\n"
        return out + DONE_EVENT

    def _finish_event(self, finish: str) -> bytes:
        raise NotImplementedError

    def _failed(self, message: str) -> bytes:
        self.finished = True
        return error_event(message)

    def error_frame(self, message: str) -> bytes:
        """The in-band error event for a stream that broke after it started."""
        if self.finished:
            return b""
        return self._failed(message)


class ChatStream(_SseStream):
    """Translates one ``/api/chat`` NDJSON stream into ``chat.completion.chunk`` events.

    Args:
        model: The model name the client sent (echoed in every event).
        include_usage: ``stream_options.include_usage``.
        reasoning_field: Where thinking goes: ``reasoning_content``, ``reasoning`` or ``drop``.
    """

    __slots__ = ("_next_tool", "_reasoning", "_saw_tool", "_sent_role", "_tail")

    object_name = b"chat.completion.chunk"
    choice_open = b'"choices":[{"index":0,"delta":'

    def __init__(
        self, model: str, *, include_usage: bool = False, reasoning_field: str = "reasoning_content"
    ) -> None:
        super().__init__(model, "chatcmpl-", include_usage)
        self._reasoning = reasoning_field
        self._sent_role = False
        self._next_tool = 0
        self._saw_tool = False
        self._tail = b',"logprobs":null,"finish_reason":null' + self._tail_end

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
        if not self._head:
            self._start(chunk.created_at)
        message = chunk.message
        out = b""
        if message is None:
            if not self._sent_role:
                out = self._delta_event(OllamaMessage(), None)
        elif (
            self._sent_role
            and not message.thinking
            and not message.tool_calls
            and chunk.logprobs is None
        ):
            if message.content:
                out = self._head + b'{"content":' + _encode(message.content) + b"}" + self._tail
        else:
            out = self._delta_event(message, chunk.logprobs)
        if chunk.done:
            out += self._done(chunk)
        return out

    def _delta_event(self, message: OllamaMessage, logprobs: list[dict[str, Any]] | None) -> bytes:
        delta = ChunkDelta()
        if not self._sent_role:
            self._sent_role = True
            delta.role = "assistant"
            delta.content = message.content
        elif message.content:
            delta.content = message.content
        if message.thinking and self._reasoning != "drop":
            setattr(delta, self._reasoning, message.thinking)
        if message.tool_calls:
            fragments = []
            for call in message.tool_calls:
                fragments.append(
                    StreamToolCall(
                        index=self._next_tool,
                        id=call.id or new_call_id(),
                        type="function",
                        function=StreamFunctionCall(
                            call.function.name, arguments_json(call.function.arguments)
                        ),
                    )
                )
                self._next_tool += 1
            delta.tool_calls = fragments
            self._saw_tool = True
        converted = chat_logprobs(logprobs)
        if converted is None:
            if delta == _EMPTY_DELTA:
                return b""
            return self._head + _encode(delta) + self._tail
        return (
            self._head
            + _encode(delta)
            + b',"logprobs":'
            + _encode(converted)
            + b',"finish_reason":null'
            + self._tail_end
        )

    def _done(self, chunk: OllamaChatChunk) -> bytes:
        finish = finish_reason(chunk.done_reason, self._saw_tool)
        return self._closing(finish, chunk.prompt_eval_count, chunk.eval_count)

    def _finish_event(self, finish: str) -> bytes:
        return (
            self._head
            + b'{},"logprobs":null,"finish_reason":"'
            + finish.encode()
            + b'"'
            + self._tail_end
        )


_EMPTY_DELTA = ChunkDelta()


class CompletionStream(_SseStream):
    """Translates one ``/api/generate`` NDJSON stream into ``text_completion`` events.

    Args:
        model: The model name the client sent.
        include_usage: ``stream_options.include_usage``.
        echo: The prompt, when the client asked for ``echo`` (it starts the first event).
    """

    __slots__ = ("_echo", "_offset", "_tail")

    object_name = b"text_completion"
    choice_open = b'"choices":[{"text":'

    def __init__(self, model: str, *, include_usage: bool = False, echo: str = "") -> None:
        super().__init__(model, "cmpl-", include_usage)
        self._echo = echo
        self._offset = 0  # characters sent so far: text_offset of the next token
        self._tail = b',"index":0,"logprobs":null,"finish_reason":null' + self._tail_end

    def feed(self, line: bytes) -> bytes:
        """The SSE bytes for one NDJSON line (``b""`` when it carries no text)."""
        if self.finished:
            return b""
        try:
            chunk: OllamaGenerateChunk = decode_generate_chunk(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._failed(_UNREADABLE)
        if chunk.error is not None:
            return self._failed(chunk.error or "the node reported an error")
        if not self._head:
            self._start(chunk.created_at)
        text = chunk.response
        offset = self._offset
        if self._echo:
            offset += len(self._echo)
            text, self._echo = self._echo + text, ""
        self._offset += len(text)
        if chunk.logprobs is None:
            out = self._head + _encode(text) + self._tail if text else b""
        else:
            logprobs = _encode(completion_logprobs(chunk.logprobs, offset))
            tail = b',"index":0,"logprobs":' + logprobs + b',"finish_reason":null'
            out = self._head + _encode(text) + tail + self._tail_end
        if chunk.done:
            finish = finish_reason(chunk.done_reason, False)
            out += self._closing(finish, chunk.prompt_eval_count, chunk.eval_count)
        return out

    def _finish_event(self, finish: str) -> bytes:
        return (
            self._head
            + b'"","index":0,"logprobs":null,"finish_reason":"'
            + finish.encode()
            + b'"'
            + self._tail_end
        )
