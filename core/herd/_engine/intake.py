"""Intake: what the router learns about a request before routing it, read once.

Two kinds of facts, both filled into the canonical request by the Exchange:

*Tags*, labels a client puts on its requests, carried to the request's trace. They come
from the ``X-Herd-Tags`` header (comma-separated), the body's ``metadata.tags`` (a list of
strings or a comma-separated string; OpenAI clients send it through ``extra_body``, Ollama
clients put it in the body), OpenAI's ``user`` (as ``user:<value>``) and the client's API key
(as ``key:<name>``, added by the router; clients may not send a ``key:`` tag themselves).
Tags are checked (length, characters, count), a bad one is a 400 that names it, and they are
never forwarded to a node: ``metadata`` is stripped from the body.

*Hints* routing needs: estimated prompt tokens (about four characters a token, a fixed
count per image: good enough to tell a 500-token question from a 30,000-token document,
which is all the context-fit signal asks), images, ``num_predict``, the conversation key,
the client's fallback list and ``X-Herd-No-Fallback``. Both protocols fill the same fields:
the Ollama routes pass their decoded structs, the OpenAI routes their canonical body dict.

Example:
    >>> collect_tags("team-a, batch", {"tags": ["nightly"]}, user="bob")
    ['team-a', 'batch', 'nightly', 'user:bob']
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from herd._engine.auth import api_key_name
from herd.errors import HerdError
from herd.interfaces import InferenceRequest
from herd.names import normalize_model_name
from herd.protocol.ollama import option_int

if TYPE_CHECKING:
    from herd._engine.exchange import Exchange

__all__ = [
    "CHARS_PER_TOKEN",
    "IMAGE_TOKENS",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "TAG_HEADER",
    "bare_request",
    "collect_tags",
    "conversation_key",
    "describe_request",
    "request_tags",
    "split_metadata",
]

TAG_HEADER = "x-herd-tags"
MAX_TAGS = 32
MAX_TAG_LENGTH = 128
_TAG = re.compile(r"[A-Za-z0-9_.:/@+=#~-]+")
_RESERVED = "key:"
_decode_dict = msgspec.json.Decoder(dict[str, Any]).decode


def collect_tags(
    header: str | None,
    metadata: Any = None,
    *,
    user: str | None = None,
    key_name: str = "",
) -> list[str]:
    """Every tag of one request, checked and de-duplicated, in the order given.

    Args:
        header: The ``X-Herd-Tags`` header, or None.
        metadata: The body's ``metadata`` object, or None.
        user: OpenAI's ``user`` field, or None.
        key_name: The name of the client's API key ("" when keys are off).

    Raises:
        HerdError: 400 naming the bad tag and where it came from.
    """
    tags: list[str] = []
    if header:
        tags += _checked(_split(header, "X-Herd-Tags"), "X-Herd-Tags")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise HerdError(400, "metadata must be an object", param="metadata")
        value = metadata.get("tags")
        if value is not None:
            tags += _checked(_split(value, "metadata.tags"), "metadata.tags")
    if user:
        tags += _checked(["user:" + user], "user")
    if key_name:
        tags.append(_RESERVED + key_name)
    if not tags:
        return tags
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise HerdError(400, f"too many tags: {len(unique)} (at most {MAX_TAGS})", param="tags")
    return unique


def request_tags(request: Any, metadata: Any = None, user: str | None = None) -> list[str]:
    """:func:`collect_tags` for a Litestar request (its header and its API key's name)."""
    return collect_tags(
        request.headers.get(TAG_HEADER),
        metadata,
        user=user,
        key_name=api_key_name(request),
    )


def split_metadata(body: bytes) -> tuple[dict[str, Any] | None, Any]:
    """The body without its top-level ``metadata``, and that metadata.

    Returns ``(None, None)`` when the body has no top-level ``metadata`` key, so a caller
    can keep forwarding the client's own bytes (the check is one substring search).
    """
    if body.find(b'"metadata"') < 0:
        return None, None
    try:
        data = _decode_dict(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, None
    if "metadata" not in data:
        return None, None
    return data, data.pop("metadata")


def _split(value: Any, source: str) -> list[str]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
    else:
        raise HerdError(
            400, f"{source} must be a list of strings or a comma-separated string", param=source
        )
    return [item.strip() for item in items if item.strip()]


def _checked(tags: list[str], source: str) -> list[str]:
    for tag in tags:
        if len(tag) > MAX_TAG_LENGTH or not _TAG.fullmatch(tag):
            raise HerdError(
                400,
                f"invalid tag {tag[: MAX_TAG_LENGTH + 8]!r} (from {source}): a tag is 1 to "
                f"{MAX_TAG_LENGTH} letters, digits or _.:/@+=#~- characters",
                param=source,
            )
        if tag.startswith(_RESERVED):
            raise HerdError(
                400,
                f"invalid tag {tag!r} (from {source}): the key: prefix is reserved for the "
                "name of the client's API key",
                param=source,
            )
    return tags


# -- hints ---------------------------------------------------------------------------

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 576  # a typical vision encoder's tokens per image (LLaVA-1.5: 24 x 24)
_NO = ("", "0", "false", "no", "off")


def _fields(item: Any) -> dict[str, Any]:
    """A decoded body or message by field name: a dict as it is, a struct's fields as a
    dict (one C call, instead of a lookup call per field), anything else no fields."""
    if type(item) is dict:
        return item
    if isinstance(item, msgspec.Struct):
        return msgspec.structs.asdict(item)
    return {}


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
    return _conversation_key(list(map(_fields, messages)))


def _conversation_key(messages: list[Any]) -> str:
    opening = []
    for message in messages:
        role = message.get("role") or ""
        opening.append(f"{role}\x00{message.get('content') or ''}")
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
    body = _fields(parsed)
    get = body.get
    messages = get("messages")
    if messages:
        messages = list(map(_fields, messages))
        for message in messages:
            content = message.get("content")
            chars += len(content) if type(content) is str else _text_length(content)
            pictures = message.get("images")
            if pictures:
                images += len(pictures)
            if message.get("role") == "assistant":
                request.follow_up = True
        request.session = _conversation_key(messages)
    for name in ("prompt", "system", "suffix", "input"):
        value = get(name)
        if value is not None:
            chars += _text_length(value)
    pictures = get("images")
    if pictures:
        images += len(pictures)
    context = get("context")
    if context:
        history = len(context)
    request.images = images
    request.prompt_tokens = chars // CHARS_PER_TOKEN + images * IMAGE_TOKENS + history
    options = get("options")
    if options is not None:
        num_predict = option_int(_fields(options).get("num_predict"))
        if num_predict is not None:
            request.num_predict = num_predict
    fallback = get("fallback_models")
    if fallback:
        request.fallback_models = [normalize_model_name(str(name)) for name in fallback]
    if headers is not None:
        value = headers.get("x-herd-no-fallback")
        if value is not None and value.strip().lower() not in _NO:
            request.allow_fallback = False


def bare_request(exchange: Exchange) -> InferenceRequest:
    """The exchange's request as far as the router knows it before (or without) its body:
    who sent it, which model, its id and arrival."""
    http = exchange.http
    scope = http.scope
    client = scope.get("client")
    # (positional: a Python class called with keywords packs and unpacks a dict;
    # tests/core/test_exchange_streams.py holds each field to its value)
    request = InferenceRequest(
        exchange.api,  # api
        exchange.endpoint,  # endpoint
        exchange.kind,  # kind
        exchange.requested,  # model
        exchange.resolved,  # model_key
        {},  # body
        False,  # stream
        None,  # raw_body
        None,  # shaped
        None,  # num_ctx
        [],  # tags
        os.urandom(8).hex(),  # request_id
        exchange.received_at,  # received_at
        f"{client[0]}:{client[1]}" if client else "",  # client
        http.headers.get("traceparent", ""),  # traceparent
    )
    api_key = scope.get("herd_api_key")
    if api_key:
        request.api_key = api_key
    return request
