"""Ollama reply types: what a node answers on chat, generate and embed (pure: no I/O).

The router relays Ollama replies byte for byte on the Ollama API; it decodes them only
to translate them for another protocol (OpenAI) or to build one (a backend that speaks
OpenAI). Every field has a default, because Ollama omits zero metrics and empty fields.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "OllamaChatChunk",
    "OllamaEmbedReply",
    "OllamaGenerateChunk",
    "OllamaMessage",
    "OllamaToolCall",
    "OllamaToolFunction",
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


decode_chat_chunk = msgspec.json.Decoder(OllamaChatChunk).decode
decode_generate_chunk = msgspec.json.Decoder(OllamaGenerateChunk).decode
decode_embed_reply = msgspec.json.Decoder(OllamaEmbedReply).decode
