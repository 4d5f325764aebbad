"""Cheap facts about a request that routing needs, read once by the route.

Token counts are estimates (about four characters a token, a fixed count per image):
good enough to tell a 500-token question from a 30,000-token document, which is all the
context-fit signal asks. Both protocols fill the same fields: the Ollama routes pass their
decoded structs, the OpenAI routes their canonical (Ollama-shaped) body dict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from herd.interfaces import InferenceRequest
from herd.names import normalize_model_name

__all__ = ["CHARS_PER_TOKEN", "IMAGE_TOKENS", "conversation_key", "describe_request"]

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 576  # a typical vision encoder's tokens per image (LLaVA-1.5: 24 x 24)
_NO = ("", "0", "false", "no", "off")


def _get(item: Any, name: str) -> Any:
    if isinstance(item, dict):
        return item.get(name)
    return getattr(item, name, None)


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(part) if isinstance(part, str) else 0 for part in value)
    return 0


def conversation_key(messages: list[Any]) -> str:
    """A key shared by every turn of one conversation: its system and first user message.

    Later turns resend the same opening, so they hash the same; that opening is also the
    prefix the node holds in its KV cache.
    """
    opening = []
    for message in messages:
        role = _get(message, "role") or ""
        opening.append(f"{role}\x00{_get(message, 'content') or ''}")
        if role == "user":
            digest = hashlib.blake2b("\x01".join(opening).encode(), digest_size=8)
            return "chat:" + digest.hexdigest()
    return ""


def describe_request(
    request: InferenceRequest, parsed: Any, headers: Mapping[str, str] | None = None
) -> None:
    """Fill the request's routing hints from its decoded body and headers.

    Args:
        request: The canonical request; ``prompt_tokens``, ``images``, ``num_predict``,
            ``session``, ``follow_up``, ``fallback_models`` and ``allow_fallback`` are set.
        parsed: The decoded body: an Ollama request struct or a body dict.
        headers: The client's headers (``X-Herd-No-Fallback`` forbids a substitute model).

    Example:
        >>> describe_request(request, ChatRequest(model="m", messages=[...]), headers)
    """
    chars = images = history = 0
    messages = _get(parsed, "messages")
    if messages:
        for message in messages:
            chars += _text_length(_get(message, "content"))
            pictures = _get(message, "images")
            if pictures:
                images += len(pictures)
            if _get(message, "role") == "assistant":
                request.follow_up = True
        request.session = conversation_key(messages)
    for name in ("prompt", "system", "suffix", "input"):
        chars += _text_length(_get(parsed, name))
    pictures = _get(parsed, "images")
    if pictures:
        images += len(pictures)
    context = _get(parsed, "context")
    if context:
        history = len(context)
    request.images = images
    request.prompt_tokens = chars // CHARS_PER_TOKEN + images * IMAGE_TOKENS + history
    options = _get(parsed, "options")
    if options is not None:
        num_predict = _get(options, "num_predict")
        if isinstance(num_predict, int):
            request.num_predict = num_predict
    fallback = _get(parsed, "fallback_models")
    if fallback:
        request.fallback_models = [normalize_model_name(str(name)) for name in fallback]
    if headers is not None:
        value = headers.get("x-herd-no-fallback")
        if value is not None and value.strip().lower() not in _NO:
            request.allow_fallback = False
