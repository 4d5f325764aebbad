"""Ollama answers to OpenAI replies, whole (not streamed) ones (pure: no I/O).

Streams are translated by :mod:`herd.protocol.openai_stream`; both share the helpers here
(ids, ``finish_reason``, tool calls, usage, logprobs, where thinking goes).

Example:
    >>> body = b'{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant",'
    ...        b'"content":"Hi"},"done":true,"done_reason":"stop","eval_count":1}'
    >>> reply = msgspec.json.decode(chat_completion(body, "m"))
    >>> reply["choices"][0]["message"]["content"], reply["choices"][0]["finish_reason"]
    ('Hi', 'stop')
"""

from __future__ import annotations

import array
import base64
import os
import sys
import time
from datetime import datetime
from typing import Any

import msgspec

from herd.protocol.ollama_replies import (
    OllamaToolCall,
    as_chat_reply,
    as_embed_reply,
    as_generate_reply,
)
from herd.protocol.openai import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    CompletionChoice,
    Embedding,
    EmbeddingList,
    EmbeddingUsage,
    FunctionCall,
    TextCompletion,
    ToolCall,
    Usage,
)

__all__ = [
    "REASONING_FIELDS",
    "arguments_json",
    "base64_vector",
    "chat_completion",
    "chat_logprobs",
    "completion_logprobs",
    "embedding_list",
    "finish_reason",
    "new_call_id",
    "new_id",
    "text_completion",
    "tool_calls_out",
    "unix_time",
]

REASONING_FIELDS = ("reasoning_content", "reasoning", "drop")
"""Where a reply's thinking goes: the common ``reasoning_content``, Ollama's ``reasoning``,
or nowhere. It never goes into ``content``."""

_ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789"
_encode = msgspec.json.encode


def new_id(prefix: str) -> str:
    """A unique reply id: ``prefix`` + 32 hex digits (``chatcmpl-...``, ``cmpl-...``)."""
    return prefix + os.urandom(16).hex()


def new_call_id() -> str:
    """A tool-call id in Ollama's style: ``call_`` + 8 lowercase alphanumerics."""
    return "call_" + "".join(chr(_ALPHABET[b % 36]) for b in os.urandom(8))


def unix_time(created_at: str) -> int:
    """An Ollama RFC 3339 ``created_at`` as Unix seconds (now, when absent or unreadable)."""
    if created_at:
        try:
            return int(datetime.fromisoformat(created_at).timestamp())
        except ValueError:
            pass
    return int(time.time())


def finish_reason(done_reason: str | None, saw_tool: bool) -> str:
    """OpenAI ``finish_reason`` for an Ollama ``done_reason`` (section 9.5)."""
    if done_reason == "length":
        return "length"
    return "tool_calls" if saw_tool else "stop"


def arguments_json(arguments: Any) -> str:
    """Tool-call arguments as OpenAI's compact JSON string (key order kept, UTF-8)."""
    if isinstance(arguments, str):
        return arguments
    return _encode(arguments).decode()


def tool_calls_out(calls: list[OllamaToolCall]) -> list[ToolCall]:
    """Ollama tool calls (object arguments) as OpenAI tool calls (string arguments)."""
    return [
        ToolCall(
            id=call.id or new_call_id(),
            function=FunctionCall(call.function.name, arguments_json(call.function.arguments)),
        )
        for call in calls
    ]


def chat_logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """Ollama ``logprobs`` entries as OpenAI's ``{"content": [...]}``."""
    if entries is None:
        return None
    content = []
    for entry in entries:
        item = {
            "token": entry.get("token", ""),
            "logprob": entry.get("logprob", 0.0),
            "bytes": entry.get("bytes"),
            "top_logprobs": [
                {
                    "token": t.get("token", ""),
                    "logprob": t.get("logprob", 0.0),
                    "bytes": t.get("bytes"),
                }
                for t in entry.get("top_logprobs") or []
            ],
        }
        content.append(item)
    return {"content": content, "refusal": None}


def completion_logprobs(
    entries: list[dict[str, Any]] | None, offset: int = 0
) -> dict[str, Any] | None:
    """Ollama ``logprobs`` entries in the legacy completions shape.

    Args:
        entries: The node's entries (token, logprob, top_logprobs).
        offset: Characters of text before the first token (``text_offset`` starts there).

    Returns:
        ``{"tokens", "token_logprobs", "top_logprobs", "text_offset"}``, or None.
    """
    if entries is None:
        return None
    tokens: list[str] = []
    token_logprobs: list[float] = []
    top: list[dict[str, float]] = []
    offsets: list[int] = []
    for entry in entries:
        token = entry.get("token", "")
        tokens.append(token)
        token_logprobs.append(entry.get("logprob", 0.0))
        top.append(
            {t.get("token", ""): t.get("logprob", 0.0) for t in entry.get("top_logprobs") or []}
        )
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top,
        "text_offset": offsets,
    }


def chat_completion(
    body: bytes | Any, model: str, reasoning_field: str = "reasoning_content"
) -> bytes:
    """A whole Ollama ``/api/chat`` reply as an OpenAI ``chat.completion`` (encoded).

    Args:
        body: The node's JSON reply (``stream: false``), or the object a backend built.
        model: The model name the client sent (echoed back).
        reasoning_field: One of :data:`REASONING_FIELDS`.
    """
    reply = as_chat_reply(body)
    message = reply.message
    calls = tool_calls_out(message.tool_calls) if message and message.tool_calls else None
    content = message.content if message else ""
    out = AssistantMessage(role="assistant", content=None if calls and not content else content)
    if calls:
        out.tool_calls = calls
    if message and message.thinking and reasoning_field != "drop":
        setattr(out, reasoning_field, message.thinking)
    choice = ChatChoice(
        message=out,
        logprobs=chat_logprobs(reply.logprobs),
        finish_reason=finish_reason(reply.done_reason, bool(calls)),
    )
    completion = ChatCompletion(
        id=new_id("chatcmpl-"),
        created=unix_time(reply.created_at),
        model=model,
        choices=[choice],
        usage=Usage(
            reply.prompt_eval_count,
            reply.eval_count,
            reply.prompt_eval_count + reply.eval_count,
        ),
    )
    return _encode(completion)


def text_completion(body: bytes | Any, model: str, echo: str = "") -> bytes:
    """A whole Ollama ``/api/generate`` reply as an OpenAI ``text_completion`` (encoded).

    Args:
        body: The node's JSON reply.
        model: The model name the client sent.
        echo: The prompt, when the client asked for ``echo`` (it starts the text).
    """
    reply = as_generate_reply(body)
    completion = TextCompletion(
        id=new_id("cmpl-"),
        created=unix_time(reply.created_at),
        model=model,
        choices=[
            CompletionChoice(
                text=echo + reply.response,
                logprobs=completion_logprobs(reply.logprobs, len(echo)),
                finish_reason=finish_reason(reply.done_reason, False),
            )
        ],
        usage=Usage(
            reply.prompt_eval_count,
            reply.eval_count,
            reply.prompt_eval_count + reply.eval_count,
        ),
    )
    return _encode(completion)


def base64_vector(vector: list[float]) -> str:
    """A vector as base64 of little-endian float32 (what the OpenAI SDK asks for)."""
    packed = array.array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def embedding_list(body: bytes | Any, model: str, encoding: str = "float") -> bytes:
    """An Ollama ``/api/embed`` reply as an OpenAI embeddings ``list`` (encoded)."""
    reply = as_embed_reply(body)
    as_base64 = encoding == "base64"
    data = [
        Embedding(index=index, embedding=base64_vector(vector) if as_base64 else vector)
        for index, vector in enumerate(reply.embeddings)
    ]
    tokens = reply.prompt_eval_count
    return _encode(EmbeddingList(data=data, model=model, usage=EmbeddingUsage(tokens, tokens)))
