"""OpenAI wire types: what ``/v1/*`` clients send and what they get back (pure: no I/O).

Every request and reply body of the OpenAI endpoints herd serves is a msgspec Struct here,
so an OpenAI-compatible backend plugin can reuse them to talk to its own server. Unknown
request fields are ignored, as Ollama's own ``/v1`` layer ignores them; a field of the
wrong type is an :class:`OpenAIRequestError` that names the field (OpenAI's ``param``).

Translation to and from the Ollama wire lives beside this module:
:mod:`herd.protocol.openai_requests` (client requests to Ollama bodies),
:mod:`herd.protocol.openai_replies` (Ollama answers to OpenAI objects),
:mod:`herd.protocol.openai_stream` (Ollama NDJSON to OpenAI SSE) and
:mod:`herd.protocol.openai_upstream` (the reverse, for backends that speak OpenAI).

Example:
    >>> req = decode_openai(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}',
    ...                     ChatCompletionRequest)
    >>> req.messages[0].content
    'hi'
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from herd.protocol.limits import ModelName
from herd.protocol.ollama import options_problem
from herd.protocol.openai_objects import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    CompletionChoice,
    Embedding,
    EmbeddingList,
    EmbeddingUsage,
    ErrorBody,
    ErrorDetail,
    FunctionCall,
    Model,
    ModelList,
    StreamFunctionCall,
    StreamToolCall,
    TextCompletion,
    ToolCall,
    Usage,
)

__all__ = [
    "AssistantMessage",
    "AudioPart",
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "ChunkChoice",
    "ChunkDelta",
    "CompletionChoice",
    "CompletionRequest",
    "ContentPart",
    "Embedding",
    "EmbeddingList",
    "EmbeddingRequest",
    "EmbeddingUsage",
    "ErrorBody",
    "ErrorDetail",
    "FilePart",
    "FunctionCall",
    "FunctionDefinition",
    "ImagePart",
    "ImageUrl",
    "InputAudio",
    "JsonSchemaFormat",
    "Model",
    "ModelList",
    "OpenAIRequestError",
    "ReasoningOptions",
    "RefusalPart",
    "ResponseFormat",
    "StreamFunctionCall",
    "StreamOptions",
    "StreamToolCall",
    "TextCompletion",
    "TextPart",
    "Tool",
    "ToolCall",
    "Usage",
    "decode_openai",
    "error_body",
    "error_event",
    "sse_event",
]

DONE_EVENT = b"data: [DONE]\n\n"
"""The SSE event that ends a chat or completion stream."""


# -- requests ---------------------------------------------------------------------------


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    """``{"type": "text", "text": ...}``"""

    text: str = ""


class ImageUrl(msgspec.Struct, omit_defaults=True):
    """An image reference: a ``data:`` URL (or an ``http(s)`` URL, which herd refuses)."""

    url: str
    detail: str | None = None


class ImagePart(msgspec.Struct, tag="image_url", tag_field="type"):
    """``{"type": "image_url", "image_url": {"url": ...}}`` (a bare string URL is accepted)."""

    image_url: ImageUrl | str


class InputAudio(msgspec.Struct):
    data: str
    format: str = "wav"


class AudioPart(msgspec.Struct, tag="input_audio", tag_field="type"):
    """``{"type": "input_audio", "input_audio": {"data": b64, "format": ...}}``"""

    input_audio: InputAudio


class FilePart(msgspec.Struct, tag="file", tag_field="type"):
    """``{"type": "file", ...}``: decoded so the error can say it is not supported."""

    file: dict[str, Any] = {}


class RefusalPart(msgspec.Struct, tag="refusal", tag_field="type"):
    """An assistant's refusal, as an earlier turn may carry it."""

    refusal: str = ""


ContentPart = TextPart | ImagePart | AudioPart | FilePart | RefusalPart


class ChatMessage(msgspec.Struct, omit_defaults=True):
    """One message of a chat request, for every role.

    ``reasoning_content`` / ``reasoning`` carry an earlier assistant turn's thinking back.
    """

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class FunctionDefinition(msgspec.Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A tool offered to the model; only ``type: "function"`` tools reach Ollama."""

    type: str
    function: FunctionDefinition | None = None


class JsonSchemaFormat(msgspec.Struct, omit_defaults=True):
    name: str = ""
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``text``, ``json_object`` or ``json_schema`` (with ``json_schema.schema``)."""

    type: str
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(msgspec.Struct, omit_defaults=True):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ReasoningOptions(msgspec.Struct, omit_defaults=True):
    effort: str | None = None


KeepAlive = float | str | None


class _OllamaExtensions(msgspec.Struct, omit_defaults=True):
    """Ollama's own knobs, reachable from OpenAI clients through ``extra_body``."""

    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    think: bool | str | None = None
    num_ctx: int | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    fallback_models: list[ModelName] | None = None  # herd: models the client accepts instead


class ChatCompletionRequest(_OllamaExtensions):
    """``POST /v1/chat/completions``"""

    model: ModelName = ""
    messages: list[ChatMessage] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    reasoning: ReasoningOptions | None = None


class CompletionRequest(_OllamaExtensions):
    """``POST /v1/completions`` (legacy). ``prompt`` is checked by the translator."""

    model: ModelName = ""
    prompt: str | list[Any] | None = None
    suffix: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    best_of: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    logprobs: int | None = None
    echo: bool | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None


class EmbeddingRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v1/embeddings``. ``input`` is checked by the translator."""

    model: ModelName = ""
    input: str | list[Any] | None = None
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    truncate: bool | None = None


# -- codecs -----------------------------------------------------------------------------


class OpenAIRequestError(ValueError):
    """A request herd cannot accept: a 400 whose ``param`` names the field at fault.

    Args:
        message: For the client.
        param: The request field (``messages[0].content``), or None.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def checked_options(options: Any) -> Any:
    """Ollama ``options`` passed through ``extra_body``, refused here when their types are
    wrong (Ollama would answer a 500, which reads as a failing node)."""
    problem = options_problem(options)
    if problem is not None:
        message, key = problem
        raise OpenAIRequestError(message, f"options.{key}" if key else "options")
    return options


T = TypeVar("T")
_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
_PATH = re.compile(r" - at `\$\.?(.*)`$")


def decode_openai(body: bytes, struct: type[T]) -> T:
    """Decode and validate an OpenAI request body.

    Raises:
        OpenAIRequestError: empty body, malformed JSON, or a wrong field type (``param``
            is the path of the field, e.g. ``messages[0].content``).
    """
    if not body or not body.strip():
        raise OpenAIRequestError("missing request body")
    decoder = _decoders.get(struct)
    if decoder is None:
        decoder = _decoders[struct] = msgspec.json.Decoder(struct)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        param = match.group(1) or None if match else None
        raise OpenAIRequestError(f"invalid request: {text}", param) from None
    except msgspec.DecodeError as exc:
        raise OpenAIRequestError(f"invalid JSON: {exc}") from None


_encode = msgspec.json.encode

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
"""OpenAI ``error.type`` by HTTP status; anything else from 500 up is ``server_error``."""

ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


def error_type(status: int) -> str:
    """The OpenAI ``error.type`` for an HTTP status."""
    if status >= 500:
        return "server_error"
    return ERROR_TYPES.get(status, "invalid_request_error")


def error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> bytes:
    """An OpenAI error object for a status, e.g. ``{"error": {"message": ..., ...}}``."""
    detail = ErrorDetail(message, error_type(status), param, code or ERROR_CODES.get(status))
    return _encode(ErrorBody(detail))


def sse_event(payload: bytes) -> bytes:
    """One SSE event: ``data: <json>`` and a blank line."""
    return b"data: " + payload + b"\n\n"


def error_event(message: str) -> bytes:
    """The in-band error event of a stream that already started (no ``[DONE]`` follows)."""
    return sse_event(_encode(ErrorBody(ErrorDetail(message, "server_error"))))
