"""Anthropic Messages wire types: what ``/v1/messages`` clients send (pure: no I/O).

The request side of Anthropic's Messages API as msgspec Structs, the decoder that names
the field at fault, and Anthropic's error shape (``{"type": "error", "error": {"type",
"message"}}``) with its error types by HTTP status. Unknown fields are ignored (e.g.
``cache_control`` on a block); an unknown content block ``type`` is a 400.

Translation lives beside this module: :mod:`herd.protocol.anthropic_requests` (requests to
the canonical Ollama body) and :mod:`herd.protocol.anthropic_replies` (Ollama answers to
Anthropic messages and SSE events).

Example:
    >>> req = decode_anthropic(b'{"model": "m", "max_tokens": 5, '
    ...                        b'"messages": [{"role": "user", "content": "hi"}]}')
    >>> req.messages[0].content, req.max_tokens
    ('hi', 5)
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

__all__ = [
    "AnthropicRequestError",
    "Base64Source",
    "ContentBlock",
    "DocumentBlock",
    "ImageBlock",
    "MessageParam",
    "MessagesRequest",
    "OutputConfig",
    "RedactedThinkingBlock",
    "TextBlock",
    "ThinkingBlock",
    "ThinkingConfig",
    "ToolChoice",
    "ToolParam",
    "ToolResultBlock",
    "ToolUseBlock",
    "decode_anthropic",
    "error_body",
    "error_event",
    "error_type",
]


class TextBlock(msgspec.Struct, tag="text", tag_field="type"):
    """``{"type": "text", "text": ...}``"""

    text: str = ""


class Base64Source(msgspec.Struct, omit_defaults=True):
    """An image source: ``base64`` (with ``media_type`` and ``data``) or ``url`` (refused)."""

    type: str = "base64"
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ImageBlock(msgspec.Struct, tag="image", tag_field="type"):
    """``{"type": "image", "source": {...}}``"""

    source: Base64Source


class ToolUseBlock(msgspec.Struct, tag="tool_use", tag_field="type"):
    """A tool call the assistant made (sent back in a later request's history)."""

    id: str = ""
    name: str = ""
    input: dict[str, Any] = {}


class ToolResultBlock(msgspec.Struct, tag="tool_result", tag_field="type"):
    """A tool's answer, in a user turn: ``content`` is a string or text/image blocks."""

    tool_use_id: str = ""
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None


class ThinkingBlock(msgspec.Struct, tag="thinking", tag_field="type"):
    """An earlier turn's thinking; the ``signature`` is kept by clients, ignored here."""

    thinking: str = ""
    signature: str = ""


class RedactedThinkingBlock(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    """Encrypted thinking from Anthropic's own models: dropped (no local model reads it)."""

    data: str = ""


class DocumentBlock(msgspec.Struct, tag="document", tag_field="type"):
    """A PDF or text document: decoded so the error can say it is not supported."""

    source: dict[str, Any] = {}


ContentBlock = (
    TextBlock
    | ImageBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | DocumentBlock
)


class MessageParam(msgspec.Struct):
    """One turn: ``role`` is ``user`` or ``assistant``; content a string or blocks."""

    role: str
    content: str | list[ContentBlock]


class ToolParam(msgspec.Struct, omit_defaults=True):
    """A tool offered to the model. Server tools (a ``type`` such as ``web_search_...``)
    run on Anthropic's side and are not offered to a local model."""

    name: str = ""
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class ToolChoice(msgspec.Struct, omit_defaults=True):
    """``auto``, ``any``, ``tool`` (with ``name``) or ``none``."""

    type: str = "auto"
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(msgspec.Struct, omit_defaults=True):
    """``{"type": "enabled", "budget_tokens": N}``, ``{"type": "disabled"}`` or ``adaptive``."""

    type: str = "enabled"
    budget_tokens: int | None = None


class OutputConfig(msgspec.Struct, omit_defaults=True):
    """``effort`` (not used: local models take no effort level) and ``format``
    (``{"type": "json_schema", "schema": {...}}``, structured output)."""

    effort: str | None = None
    format: dict[str, Any] | None = None


class MessagesRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v1/messages`` (and ``/v1/messages/count_tokens``, without ``max_tokens``)."""

    model: str = ""
    messages: list[MessageParam] | None = None
    max_tokens: int | None = None
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
    metadata: dict[str, Any] | None = None
    fallback_models: list[str] | None = None  # herd: models the client accepts instead


class AnthropicRequestError(ValueError):
    """A request herd cannot accept: a 400 ``invalid_request_error``.

    Args:
        message: For the client; names the field at fault.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_decoder = msgspec.json.Decoder(MessagesRequest)
_PATH = re.compile(r" - at `\$\.?(.*)`$")


def decode_anthropic(body: bytes) -> MessagesRequest:
    """Decode and validate a Messages request body.

    Raises:
        AnthropicRequestError: empty body, malformed JSON, or a field of the wrong type
            (the message says which, e.g. ``messages.0.content.1.type``).
    """
    if not body or not body.strip():
        raise AnthropicRequestError("missing request body")
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        where = _dotted(match.group(1)) if match else ""
        detail = text[: match.start()] if match else text
        raise AnthropicRequestError(f"{where}: {detail}" if where else detail) from None
    except msgspec.DecodeError as exc:
        raise AnthropicRequestError(f"invalid JSON: {exc}") from None


def _dotted(path: str) -> str:
    """``messages[0].content[1].type`` as Anthropic writes it: ``messages.0.content.1.type``."""
    return re.sub(r"\[(\d+)\]", r".\1", path).lstrip(".")


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic ``error.type`` by HTTP status; any other 5xx is ``api_error``."""

_encode = msgspec.json.encode


def error_type(status: int) -> str:
    """The Anthropic ``error.type`` for an HTTP status."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    return ERROR_TYPES.get(status, default)


def error_body(status: int, message: str, request_id: str = "") -> bytes:
    """``{"type": "error", "error": {"type": ..., "message": ...}}`` for a status."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    }
    if request_id:
        body["request_id"] = request_id
    return _encode(body)


def error_event(message: str, status: int = 500) -> bytes:
    """The SSE ``error`` event of a stream that already started."""
    return b"event: error\ndata: " + error_body(status, message) + b"\n\n"
