"""Errors in the client's own protocol: Ollama's ``{"error": msg}``, OpenAI's or Anthropic's."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response

from herd.protocol.anthropic import error_body as anthropic_error_body

__all__ = ["ANTHROPIC_PREFIX", "error_body", "is_openai_path", "render_error"]

ANTHROPIC_PREFIX = "/v1/messages"
"""Paths whose errors take Anthropic's shape: ``{"type": "error", "error": {...}}``."""

_encode = msgspec.json.encode
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def is_openai_path(path: str) -> bool:
    """Whether a path belongs to the OpenAI-compatible API (``/v1/...``)."""
    return path.startswith("/v1/")


def error_body(
    path: str, status: int, message: str, anthropic: bool = False, **extra: Any
) -> bytes:
    """The error a client of ``path`` expects, as JSON bytes (``param``, ``code`` for /v1);
    ``anthropic``: the client is Anthropic's (on a path both APIs share, ``/v1/models``)."""
    if not is_openai_path(path):
        return _encode({"error": message})
    if anthropic or path.startswith(ANTHROPIC_PREFIX):
        return anthropic_error_body(status, message)
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    error = {
        "message": message,
        "type": kind,
        "param": extra.get("param"),
        "code": extra.get("code"),
    }
    return _encode({"error": error})


def render_error(
    request: Request[Any, Any, Any], status: int, message: str, **extra: Any
) -> Response[bytes]:
    """An error in the client's protocol: Ollama ``{"error": msg}``, OpenAI's or Anthropic's."""
    headers = {}
    retry_after = extra.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    anthropic = "anthropic-version" in request.headers  # (every Anthropic SDK sends it)
    body = error_body(request.url.path, status, message, anthropic, **extra)
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
