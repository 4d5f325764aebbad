"""The other direction: herd's canonical (Ollama-shaped) requests to an OpenAI server (pure).

For a backend whose nodes speak OpenAI rather than Ollama (vLLM, llama.cpp's server,
LocalAI): :func:`chat_request_from_ollama` turns a canonical chat body into an OpenAI
request, :func:`ollama_chat_from_completion` turns the server's whole reply back into an
Ollama reply, and :class:`NdjsonFromSse` turns its SSE stream into Ollama NDJSON lines
(tool-call fragments joined by ``index`` and sent whole, arguments parsed to objects;
``done: true`` with ``done_reason`` and token counts at the end).

Example:
    >>> req = chat_request_from_ollama({"model": "m", "messages": [
    ...     {"role": "user", "content": "hi"}], "options": {"num_predict": 5}})
    >>> req.max_tokens, req.messages[0].content
    (5, 'hi')
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from herd.protocol.openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    ContentPart,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageUrl,
    JsonSchemaFormat,
    ResponseFormat,
    StreamOptions,
    TextPart,
    Tool,
    ToolCall,
)
from herd.protocol.openai_replies import arguments_json
from herd.protocol.openai_upstream_logprobs import ollama_logprobs

__all__ = [
    "CUT_SHORT",
    "NdjsonFromSse",
    "chat_request_from_ollama",
    "ollama_chat_from_completion",
]

_encode = msgspec.json.encode
_decode_completion = msgspec.json.Decoder(ChatCompletion).decode
_decode_chunk = msgspec.json.Decoder(ChatCompletionChunk).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_IMAGE_TYPES = {"iVBOR": "png", "/9j/": "jpeg", "R0lGOD": "gif", "UklGR": "webp"}
_OPTION_FIELDS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")
_EXTENSION_FIELDS = ("num_ctx", "top_k", "min_p", "repeat_penalty")


def chat_request_from_ollama(body: dict[str, Any]) -> ChatCompletionRequest:
    """An OpenAI chat request for a canonical ``/api/chat`` body."""
    options = dict(body.get("options") or {})
    request = ChatCompletionRequest(
        model=str(body.get("model", "")),
        messages=[_message(m) for m in body.get("messages") or []],
        stream=bool(body.get("stream", True)),
    )
    if request.stream:
        request.stream_options = StreamOptions(include_usage=True)
    for name in _OPTION_FIELDS:
        if name in options:
            setattr(request, name, options.pop(name))
    for name in _EXTENSION_FIELDS:
        if name in options:
            setattr(request, name, options.pop(name))
    if "num_predict" in options:
        request.max_tokens = options.pop("num_predict")
    if "stop" in options:
        request.stop = list(options.pop("stop") or [])
    if options:
        request.options = options
    tools = body.get("tools")
    if tools:
        request.tools = [_tool(t) for t in tools if isinstance(t, dict)]
    fmt = body.get("format")
    if fmt == "json":
        request.response_format = ResponseFormat(type="json_object")
    elif isinstance(fmt, dict):
        schema = JsonSchemaFormat(name="response", schema=fmt)
        request.response_format = ResponseFormat(type="json_schema", json_schema=schema)
    think = body.get("think")
    if think is False:
        request.reasoning_effort = "none"
    elif think is True:
        request.reasoning_effort = "medium"
    elif isinstance(think, str):
        request.reasoning_effort = think
    if body.get("logprobs"):
        request.logprobs = True
        if body.get("top_logprobs") is not None:
            request.top_logprobs = body["top_logprobs"]
    if body.get("keep_alive") is not None:
        request.keep_alive = body["keep_alive"]
    return request


def _message(message: dict[str, Any]) -> ChatMessage:
    role = str(message.get("role", "user"))
    text = str(message.get("content") or "")
    images = message.get("images") or []
    content: str | list[ContentPart] = text
    if images:
        parts: list[ContentPart] = [TextPart(text)] if text else []
        parts += [ImagePart(ImageUrl(_data_url(image))) for image in images]
        content = parts
    out = ChatMessage(role=role, content=content)
    if role == "assistant":
        if message.get("thinking"):
            out.reasoning_content = message["thinking"]
        calls = message.get("tool_calls") or []
        if calls:
            out.tool_calls = [
                ToolCall(
                    id=str(call.get("id") or ""),
                    function=FunctionCall(
                        str(call["function"].get("name", "")),
                        arguments_json(call["function"].get("arguments") or {}),
                    ),
                )
                for call in calls
            ]
            out.content = text or None
    elif role == "tool":
        if message.get("tool_call_id"):
            out.tool_call_id = message["tool_call_id"]
        if message.get("tool_name"):
            out.name = message["tool_name"]
    return out


def _data_url(image: str) -> str:
    kind = next((k for prefix, k in _IMAGE_TYPES.items() if image.startswith(prefix)), "png")
    return f"data:image/{kind};base64,{image}"


def _tool(tool: dict[str, Any]) -> Tool:
    function = tool.get("function") or {}
    return Tool(
        type=str(tool.get("type", "function")),
        function=FunctionDefinition(
            name=str(function.get("name", "")),
            description=function.get("description"),
            parameters=function.get("parameters"),
        ),
    )


def _rfc3339(created: int | float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")


def _done_reason(finish: str | None) -> str:
    return "length" if finish == "length" else "stop"


def ollama_chat_from_completion(body: bytes, model: str) -> dict[str, Any]:
    """A whole OpenAI ``chat.completion`` as a whole Ollama ``/api/chat`` reply."""
    completion = _decode_completion(body)
    choice = completion.choices[0] if completion.choices else None
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    if choice is not None:
        source = choice.message
        message["content"] = source.content or ""
        thinking = source.reasoning_content or source.reasoning
        if thinking:
            message["thinking"] = thinking
        if source.tool_calls:
            message["tool_calls"] = [
                _ollama_call(call, i) for i, call in enumerate(source.tool_calls)
            ]
    reply: dict[str, Any] = {
        "model": model,
        "created_at": _rfc3339(completion.created),
        "message": message,
        "done": True,
        "done_reason": _done_reason(choice.finish_reason if choice else None),
    }
    logprobs = ollama_logprobs(choice.logprobs if choice else None)
    if logprobs is not None:
        reply["logprobs"] = logprobs
    if completion.usage is not None:
        reply["prompt_eval_count"] = completion.usage.prompt_tokens
        reply["eval_count"] = completion.usage.completion_tokens
    return reply


def _ollama_call(call: ToolCall, index: int) -> dict[str, Any]:
    arguments = call.function.arguments
    if isinstance(arguments, str):
        try:
            arguments = _decode_object(arguments) if arguments.strip() else {}
        except (msgspec.DecodeError, msgspec.ValidationError):
            arguments = {}
    out: dict[str, Any] = {
        "function": {"index": index, "name": call.function.name, "arguments": arguments}
    }
    if call.id:
        out["id"] = call.id
    return out


CUT_SHORT = (
    "the server ended the stream without finishing it (no finish_reason): a server that "
    "serves one request at a time cuts a stream short for the next"
)
"""An SSE stream that ended with ``[DONE]`` but no ``finish_reason`` (llama-cpp-python, by
default, stops the running stream so that a waiting request can start)."""


class NdjsonFromSse:
    """Turns an OpenAI chat SSE stream into Ollama ``/api/chat`` NDJSON lines.

    Feed it the bytes as they arrive (any split); each call returns the complete NDJSON
    lines so far. :meth:`close` at the end of the input returns what is left: the
    ``done`` line, or an error line when the stream stopped before it finished.

    Args:
        model: The model name to put in every line.
        prompt_estimate: For servers that send no usage in streams (llama-cpp-python): when
            given, a stream without usage ends with this as ``prompt_eval_count`` and the
            number of content events (one token each on such servers) as ``eval_count``.
    """

    def __init__(self, model: str, prompt_estimate: int | None = None) -> None:
        self.model = model
        self.started = time.monotonic()
        self.finished = False
        self._buffer = b""
        self._data: bytes | None = None  # the data lines of the event being read
        self._created = ""
        self._calls: dict[int, ToolCall] = {}
        self._finish: str | None = None
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._prompt_estimate = prompt_estimate
        self._events = 0  # content-bearing events, for servers that send no usage
        self.cut = False  # the server ended the stream without a finish_reason

    def feed(self, data: bytes) -> bytes:
        """NDJSON lines for the SSE events completed by ``data``.

        Follows the SSE framing: ``data:`` lines (one optional space after the colon)
        accumulate, joined by newlines, until a blank line ends the event; CRLF, CR and LF
        all end a line; comments (``:``) and other fields are skipped.
        """
        self._buffer += data
        out = b""
        while not self.finished:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line, self._buffer = self._buffer[:end].rstrip(b"\r"), self._buffer[end + 1 :]
            for part in line.split(b"\r") if line.find(b"\r") >= 0 else (line,):
                out += self._field(part)
        return out

    def _field(self, line: bytes) -> bytes:
        if not line:  # a blank line ends the event
            if self._data is None:
                return b""
            payload, self._data = self._data, None
            return self._event(payload.strip())
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            self._data = value if self._data is None else self._data + b"\n" + value
        return b""

    def close(self) -> bytes:
        """What is left at the end of the input: the done line, or an error line."""
        if self._buffer and not self.finished:  # a last line with no newline
            last, self._buffer = self._buffer, b""
            out = self._field(last.rstrip(b"\r")) + self._field(b"")
            return out + self.close()
        if self._data is not None and not self.finished:  # no blank line after the last event
            return self._field(b"") + self.close()
        if self.finished:
            return b""
        if self._finish is not None:
            return self._done()
        self.finished = True
        return _encode({"error": "the server closed the stream before it finished"}) + b"\n"

    def _typed(self, payload: bytes) -> bytes:
        """The lines for one well-formed chunk (raises on anything else)."""
        return self._chunk(_decode_chunk(payload))

    def _event(self, payload: bytes) -> bytes:
        if payload == b"[DONE]":
            if self._finish is None:  # every whole answer says why it ended: this was cut
                self.finished = self.cut = True
                return _encode({"error": CUT_SHORT}) + b"\n"
            return self._done()
        try:  # the common case first: a well-formed chunk, decoded straight into its Struct
            return self._typed(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        try:
            data = _decode_object(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.finished = True
            return _encode({"error": "the server sent an event that is not valid JSON"}) + b"\n"
        error = data.get("error")
        if error:
            self.finished = True
            message = error.get("message") if isinstance(error, dict) else str(error)
            return _encode({"error": message or "the server reported an error"}) + b"\n"
        self.finished = True
        return _encode({"error": "the server sent an event that is not a chunk"}) + b"\n"

    def _chunk(self, chunk: ChatCompletionChunk) -> bytes:
        if not self._created:
            self._created = _rfc3339(chunk.created)
        if chunk.usage is not None:
            self._prompt_tokens = chunk.usage.prompt_tokens
            self._completion_tokens = chunk.usage.completion_tokens
        out = b""
        for choice in chunk.choices[:1]:
            delta = choice.delta
            content = delta.content or ""
            thinking = delta.reasoning_content or delta.reasoning or ""
            for fragment in delta.tool_calls or []:
                out += self._tool_fragment(fragment)
            logprobs = ollama_logprobs(choice.logprobs) if choice.logprobs else None
            if content or thinking or logprobs:
                self._events += 1
                out += self._line({"role": "assistant", "content": content}, thinking, logprobs)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
                out += self._flush_calls()
        return out

    def _tool_fragment(self, fragment: Any) -> bytes:
        out = b""
        if fragment.index not in self._calls:
            out = self._flush_calls()  # a new index: the calls before it are complete
            name = fragment.function.name if fragment.function else ""
            self._calls[fragment.index] = ToolCall(
                id=fragment.id or "", function=FunctionCall(name or "", "")
            )
        call = self._calls[fragment.index]
        if fragment.function is not None:
            if fragment.function.name and not call.function.name:
                call.function.name = fragment.function.name
            call.function.arguments = str(call.function.arguments) + (
                fragment.function.arguments or ""
            )
        return out

    def _flush_calls(self) -> bytes:
        if not self._calls:
            return b""
        calls = [_ollama_call(call, index) for index, call in sorted(self._calls.items())]
        self._calls.clear()
        return self._line({"role": "assistant", "content": "", "tool_calls": calls}, "")

    def _line(
        self, message: dict[str, Any], thinking: str, logprobs: list[dict[str, Any]] | None = None
    ) -> bytes:
        if thinking:
            message["thinking"] = thinking
        line = {"model": self.model, "created_at": self._created, "message": message, "done": False}
        if logprobs:
            line["logprobs"] = logprobs
        return _encode(line) + b"\n"

    def _done(self) -> bytes:
        out = self._flush_calls()
        self.finished = True
        final: dict[str, Any] = {
            "model": self.model,
            "created_at": self._created or _rfc3339(time.time()),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": _done_reason(self._finish),
            "total_duration": int((time.monotonic() - self.started) * 1e9),
        }
        self._fill_usage(final)
        return out + _encode(final) + b"\n"

    def _fill_usage(self, final: dict[str, Any]) -> None:
        reported = self._prompt_tokens or self._completion_tokens
        if not reported and self._prompt_estimate is not None:
            self._prompt_tokens, self._completion_tokens = self._prompt_estimate, self._events
        if self._prompt_tokens:
            final["prompt_eval_count"] = self._prompt_tokens
        if self._completion_tokens:
            final["eval_count"] = self._completion_tokens
