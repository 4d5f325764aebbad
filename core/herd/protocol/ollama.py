"""Ollama wire types: what the router validates before a request reaches a node.

Unknown fields are ignored, as Ollama ignores them; a field of the wrong type is a
400 with msgspec's message naming the field.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from herd.protocol.limits import ModelName, Name

__all__ = [
    "ChatRequest",
    "CopyRequest",
    "EmbedRequest",
    "EmbeddingsRequest",
    "GenerateRequest",
    "ModelRequest",
    "OllamaDecodeError",
    "Options",
    "PullRequest",
    "decode_request",
    "error_body",
    "error_line",
    "is_unload",
    "is_zero_keep_alive",
    "option_int",
    "options_problem",
]


class ToolCallFunction(msgspec.Struct, omit_defaults=True):
    name: str
    arguments: dict[str, Any] = {}
    index: int | None = None


class ToolCall(msgspec.Struct, omit_defaults=True):
    function: ToolCallFunction
    id: str | None = None
    type: str | None = None


class Message(msgspec.Struct, omit_defaults=True):
    role: str
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


KeepAlive = float | str | None


#: A JSON number, as Ollama reads an option: 2048.0 is a fine ``num_ctx`` (Go reads every
#: JSON number as a float64 and truncates it for an integer option).
Number = int | float | None


class Options(msgspec.Struct, omit_defaults=True):
    """Ollama's documented options, typed as Ollama checks them.

    Ollama answers a wrong type (``"temperature": "hot"``, ``"stop": "x"``) with HTTP 500,
    which a router would take for a failing node: herd refuses it first, as the client's
    400. ``null`` is allowed (Ollama skips it); unknown keys pass through untouched (Ollama
    logs and ignores them). The router reads ``num_ctx`` and ``num_predict``
    (:func:`option_int`); the body goes to the node as the client wrote it.
    """

    num_ctx: Number = None
    num_predict: Number = None
    top_k: Number = None
    seed: Number = None
    repeat_last_n: Number = None
    num_keep: Number = None
    num_batch: Number = None
    num_gpu: Number = None
    main_gpu: Number = None
    num_thread: Number = None
    draft_num_predict: Number = None
    temperature: Number = None
    top_p: Number = None
    min_p: Number = None
    typical_p: Number = None
    repeat_penalty: Number = None
    presence_penalty: Number = None
    frequency_penalty: Number = None
    stop: list[str] | None = None
    use_mmap: bool | None = None


def option_int(value: Any) -> int | None:
    """An integer option as Ollama reads it: any JSON number, truncated (``2048.0`` is
    2048); None for anything else (absent, null, a bool)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return None


def options_problem(options: Any) -> tuple[str, str] | None:
    """Why Ollama would refuse ``options`` (as a 500, though the client is at fault): the
    message and the key (``temperature``), or None when it would take them."""
    try:
        msgspec.convert(options, Options)
    except msgspec.ValidationError as exc:
        message = str(exc)
        _, found, where = message.rpartition("- at `$.")
        key = where.rstrip("`").split("[")[0].split(".")[0] if found else ""
        return f"options: {message}", key
    return None


class _Inference(msgspec.Struct, omit_defaults=True):
    model: ModelName = ""
    stream: bool | None = None
    options: Options | None = None
    keep_alive: KeepAlive = None
    format: Any = None
    think: bool | str | None = None
    fallback_models: list[ModelName] | None = None  # herd: models the client accepts instead


class ChatRequest(_Inference):
    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None


class GenerateRequest(_Inference):
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    raw: bool | None = None
    images: list[str] | None = None
    context: list[int] | None = None


class EmbedRequest(msgspec.Struct, omit_defaults=True):
    model: ModelName = ""
    input: str | list[str] | None = None
    truncate: bool | None = None
    dimensions: int | None = None
    options: Options | None = None
    keep_alive: KeepAlive = None


class EmbeddingsRequest(msgspec.Struct, omit_defaults=True):
    model: ModelName = ""
    prompt: str | None = None
    options: Options | None = None
    keep_alive: KeepAlive = None


class ModelRequest(msgspec.Struct, omit_defaults=True):
    """Show and delete: ``model`` (or the older ``name``), plus an optional target ``node``."""

    model: ModelName = ""
    name: ModelName = ""
    node: Name = ""
    verbose: bool | None = None

    @property
    def model_name(self) -> str:
        return self.model or self.name


class PullRequest(ModelRequest):
    stream: bool | None = None
    insecure: bool | None = None


class CopyRequest(msgspec.Struct, omit_defaults=True):
    source: ModelName = ""
    destination: ModelName = ""
    node: Name = ""


class OllamaDecodeError(ValueError):
    """A request body the router cannot accept; the message is for the client."""


T = TypeVar("T")

_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


def decode_request(body: bytes, struct: type[T]) -> T:
    """Decode and validate a request body.

    Raises:
        OllamaDecodeError: empty body, malformed JSON, or a wrong field type.
    """
    if not body or not body.strip():
        raise OllamaDecodeError("missing request body")
    decoder = _decoders.get(struct)
    if decoder is None:
        decoder = _decoders[struct] = msgspec.json.Decoder(struct)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise OllamaDecodeError(f"invalid request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise OllamaDecodeError(f"invalid JSON: {exc}") from None


_encode = msgspec.json.encode


def error_body(message: str) -> bytes:
    """An Ollama error object: ``{"error": message}``."""
    return _encode({"error": message})


def error_line(message: str) -> bytes:
    """An in-band NDJSON error line for a stream that already started."""
    return _encode({"error": message}) + b"\n"


# A Go duration (``0s``, ``0m0s``, ``0.0h``) or a plain number, every figure in it zero
_ZERO_DURATION = re.compile(r"[+-]?(?:[0.]+(?:ns|us|µs|μs|ms|s|m|h)?)+")


def is_unload(request: ChatRequest | GenerateRequest) -> bool:
    """Whether Ollama reads ``request`` as "unload the model now" (what ``ollama stop``
    sends): no messages (or an empty prompt) and a zero ``keep_alive``, as ``0``, ``"0"``
    or a zero Go duration such as ``"0s"``."""
    empty = not request.messages if isinstance(request, ChatRequest) else not request.prompt
    return empty and is_zero_keep_alive(request.keep_alive)


def is_zero_keep_alive(keep: Any) -> bool:
    """Whether a ``keep_alive`` value says "unload now": ``0``, ``"0"``, ``"0s"``..."""
    if isinstance(keep, str):
        text = keep.strip()
        return any(c.isdigit() for c in text) and _ZERO_DURATION.fullmatch(text) is not None
    return isinstance(keep, int | float) and not isinstance(keep, bool) and keep == 0
