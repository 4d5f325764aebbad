"""Ollama reply types: what a node answers on chat, generate and embed (pure: no I/O).

The router relays Ollama replies byte for byte on the Ollama API; it decodes them only
to translate them for another protocol (OpenAI) or to build one (a backend that speaks
OpenAI). Every field has a default, because Ollama omits zero metrics and empty fields.

These structs are the canonical answer: a route that translates a whole answer takes it
through ``as_*_reply``, which decodes a node's bytes, or takes the object a translating
backend built (``UpstreamReply.decoded``) as it is, with no JSON in between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

__all__ = [
    "OllamaChatChunk",
    "OllamaEmbedReply",
    "OllamaGenerateChunk",
    "OllamaMessage",
    "OllamaToolCall",
    "OllamaToolFunction",
    "as_chat_reply",
    "as_embed_reply",
    "as_generate_reply",
    "decode_chat_chunk",
    "decode_embed_reply",
    "decode_generate_chunk",
]


class OllamaToolFunction(msgspec.Struct, omit_defaults=True):
    """A tool call's function: ``arguments`` is a JSON *object* on the Ollama side."""

    name: str = ""
    arguments: dict[str, Any] = {}
    index: int | None = None


class OllamaToolCall(msgspec.Struct, omit_defaults=True):
    function: OllamaToolFunction
    id: str = ""


class OllamaMessage(msgspec.Struct, omit_defaults=True):
    role: str = "assistant"
    content: str = ""
    thinking: str = ""
    tool_calls: list[OllamaToolCall] = []
    images: list[str] | None = None


class OllamaChatChunk(msgspec.Struct, omit_defaults=True):
    """One ``/api/chat`` line (or the whole non-streamed reply); ``error`` breaks a stream."""

    model: str = ""
    created_at: str = ""
    message: OllamaMessage | None = None
    done: bool = False
    done_reason: str | None = None
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    logprobs: list[dict[str, Any]] | None = None
    error: str | None = None


class OllamaGenerateChunk(msgspec.Struct, omit_defaults=True):
    """One ``/api/generate`` line (or the whole non-streamed reply)."""

    model: str = ""
    created_at: str = ""
    response: str = ""
    thinking: str = ""
    done: bool = False
    done_reason: str | None = None
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    logprobs: list[dict[str, Any]] | None = None
    error: str | None = None


class OllamaEmbedReply(msgspec.Struct, omit_defaults=True):
    """``/api/embed``: one vector per input, in input order."""

    model: str = ""
    embeddings: list[list[float]] = []
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0


# Lax (strict=False): a node's count written as 2.0 or "2" is still a count; a client's
# answer is not lost to how a node, or a proxy before it, spelled a number.
decode_chat_chunk = msgspec.json.Decoder(OllamaChatChunk, strict=False).decode
decode_generate_chunk = msgspec.json.Decoder(OllamaGenerateChunk, strict=False).decode
decode_embed_reply = msgspec.json.Decoder(OllamaEmbedReply, strict=False).decode


T = TypeVar("T")


def _as(struct: type[T], decode: Callable[[bytes], T], answer: Any) -> T:
    if isinstance(answer, bytes | bytearray | memoryview):
        return decode(answer)
    if isinstance(answer, struct):
        return answer
    return msgspec.convert(answer, struct)  # a dict of the same fields


def as_chat_reply(answer: bytes | OllamaChatChunk | dict[str, Any]) -> OllamaChatChunk:
    """A whole ``/api/chat`` answer as its struct, from bytes or an object."""
    return _as(OllamaChatChunk, decode_chat_chunk, answer)


def as_generate_reply(
    answer: bytes | OllamaGenerateChunk | dict[str, Any],
) -> OllamaGenerateChunk:
    """A whole ``/api/generate`` answer as its struct, from bytes or an object."""
    return _as(OllamaGenerateChunk, decode_generate_chunk, answer)


def as_embed_reply(answer: bytes | OllamaEmbedReply | dict[str, Any]) -> OllamaEmbedReply:
    """An ``/api/embed`` answer as its struct, from bytes or an object."""
    return _as(OllamaEmbedReply, decode_embed_reply, answer)
