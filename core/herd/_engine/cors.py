"""Which web pages may call herd from a browser (CORS), decided before any route runs.

A request with no ``Origin`` header (every SDK, curl, a server-side app) or with herd's own
origin (the dashboard) passes untouched. A page on another site is one of two cases:

- Its origin is in ``auth.allowed_origins`` (by default this machine's pages and desktop
  app schemes, as Ollama allows): a preflight (``OPTIONS`` with
  ``Access-Control-Request-Method``) is answered here with 204, and every answer to its
  requests, errors included, carries ``Access-Control-Allow-Origin`` and exposes herd's
  ``X-Herd-*`` headers. Access rules still apply: the page needs an API key when keys are
  set, and admin routes refuse every foreign origin (:func:`~herd._engine.auth.check_same_site`).
- Any other origin gets 403 in the client's protocol, before its request reaches a node: a
  page someone happens to open cannot spend the fleet's GPUs, even with a "simple" request
  the browser sends without asking (what Ollama does too).

The gate sits in front of Litestar's own handler (inside ``Litestar.__call__``), so it sees
every response, including the errors Litestar's exception handlers write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from herd._engine.audit import audit
from herd._engine.auth import header, is_same_site
from herd._engine.render import error_body

__all__ = ["CorsGate", "origin_matcher"]

_EXPOSED = b"X-Herd-Node, X-Herd-Model, X-Herd-Retries, X-Herd-Score, X-Herd-Context, Retry-After"
_METHODS = b"GET, POST, DELETE, OPTIONS"
_MAX_AGE = b"600"  # seconds a browser may keep a preflight's answer


def origin_matcher(patterns: Iterable[str]) -> Any:
    """A test for origins: exact ones, ``*`` for any run of characters, a lone ``*`` for all.

    Example:
        >>> allowed = origin_matcher(["http://localhost:*", "https://chat.example.com"])
        >>> bool(allowed("http://localhost:3000")), bool(allowed("http://localhost.evil.com"))
        (True, False)
    """
    patterns = [p.strip().lower().rstrip("/") for p in patterns if p.strip()]
    if "*" in patterns:
        return lambda origin: True
    # ``*`` never crosses a slash (an origin has none): app://* takes app://obsidian.md
    regex = "|".join(re.escape(p).replace(r"\*", r"[^/]*") for p in patterns) or r"(?!)"
    return re.compile(f"(?:{regex})").fullmatch


class CorsGate:
    """The ASGI gate described in the module docstring."""

    __slots__ = ("_allowed", "app")

    def __init__(self, app: Any, allowed_origins: Iterable[str]) -> None:
        self.app = app
        self._allowed = origin_matcher(allowed_origins)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")
        text = origin.decode("latin-1").strip().lower()
        if not origin or is_same_site(scope, text):
            await self.app(scope, receive, send)
            return
        if not self._allowed(text):
            await _refuse(scope, send, text)
            return
        if scope["method"] == "OPTIONS" and header(scope, b"access-control-request-method"):
            await _preflight(send, origin, header(scope, b"access-control-request-headers"))
            return

        async def send_with_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", _EXPOSED),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _preflight(send: Any, origin: bytes, requested: bytes) -> None:
    headers = [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-methods", _METHODS),
        (b"access-control-max-age", _MAX_AGE),
        (b"vary", b"Origin, Access-Control-Request-Headers"),
        (b"content-length", b"0"),
    ]
    if requested:  # any header a client sends (keys, SDK versions) is the client's business
        headers.append((b"access-control-allow-headers", requested))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _refuse(scope: Any, send: Any, origin: str) -> None:
    # the page cannot read the answer, so herd's log is where the operator learns why
    audit("refused origin", scope, level=30, origin=origin[:100], path=scope["path"])
    message = (
        f"requests from pages on {origin[:100]} are not allowed: add the origin to "
        "auth.allowed_origins to let its pages call herd"
    )
    body = error_body(scope["path"], 403, message)
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
