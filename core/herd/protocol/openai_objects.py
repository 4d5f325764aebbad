"""OpenAI reply objects: what herd answers on ``/v1/*`` (pure msgspec Structs).

Re-exported by :mod:`herd.protocol.openai`, the module plugins import; kept apart so each
module stays small. ``FunctionCall``/``ToolCall`` live here because replies and requests
(an assistant turn sent back) share them.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "AssistantMessage",
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChunkChoice",
    "ChunkDelta",
    "CompletionChoice",
    "Embedding",
    "EmbeddingList",
    "EmbeddingUsage",
    "ErrorBody",
    "ErrorDetail",
    "FunctionCall",
    "Model",
    "ModelList",
    "StreamFunctionCall",
    "StreamToolCall",
    "TextCompletion",
    "ToolCall",
    "Usage",
]


class FunctionCall(msgspec.Struct):
    """A call's function: ``arguments`` is a JSON *string* on the OpenAI side."""

    name: str
    arguments: str | dict[str, Any] = ""


class ToolCall(msgspec.Struct, kw_only=True):
    """A complete tool call on an assistant message (request or non-streamed reply)."""

    id: str = ""
    type: str = "function"
    function: FunctionCall


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class AssistantMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The reply message; ``content`` is always present (``null`` beside tool calls)."""

    role: str
    content: str | None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    refusal: str | None = None


class ChatChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    message: AssistantMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None


class ChatCompletion(msgspec.Struct, kw_only=True):
    """A whole (non-streamed) chat reply: ``object: "chat.completion"``."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    system_fingerprint: str | None = "fp_herd"
    choices: list[ChatChoice]
    usage: Usage | None = None


class StreamFunctionCall(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class StreamToolCall(msgspec.Struct, omit_defaults=True):
    """A tool-call fragment of a stream: the first for an index has ``id`` and ``name``."""

    index: int
    id: str | None = None
    type: str | None = None
    function: StreamFunctionCall | None = None


class ChunkDelta(msgspec.Struct, omit_defaults=True):
    """What is new in one streamed chunk."""

    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[StreamToolCall] | None = None
    refusal: str | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    delta: ChunkDelta
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    """One SSE event of a streamed chat: ``object: "chat.completion.chunk"``."""

    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionChoice(msgspec.Struct, kw_only=True):
    text: str
    index: int = 0
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class TextCompletion(msgspec.Struct, kw_only=True):
    """A legacy completion, whole or one streamed chunk: ``object: "text_completion"``."""

    id: str
    object: str = "text_completion"
    created: int
    model: str
    system_fingerprint: str | None = "fp_herd"
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(msgspec.Struct, kw_only=True):
    """One vector: floats, or base64 of little-endian float32 when asked for."""

    object: str = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class Model(msgspec.Struct, kw_only=True):
    """A model as ``/v1/models`` lists it."""

    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "library"


class ModelList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[Model]


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct):
    """``{"error": {"message", "type", "param", "code"}}``"""

    error: ErrorDetail
