"""Request tags: labels a client puts on its requests, carried to the request's trace.

Tags come from the ``X-Herd-Tags`` header (comma-separated), the body's ``metadata.tags``
(a list of strings or a comma-separated string; OpenAI clients send it through
``extra_body``, Ollama clients put it in the body), OpenAI's ``user`` (as ``user:<value>``)
and the client's API key (as ``key:<name>``, added by the router; clients may not send a
``key:`` tag themselves). Tags are checked (length, characters, count), a bad one is a 400
that names it, and they are never forwarded to a node: the routes strip ``metadata``.

Example:
    >>> collect_tags("team-a, batch", {"tags": ["nightly"]}, user="bob")
    ['team-a', 'batch', 'nightly', 'user:bob']
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from herd._engine.auth import api_key_name
from herd.errors import HerdError

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "TAG_HEADER",
    "collect_tags",
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
    if b'"metadata"' not in body:
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
