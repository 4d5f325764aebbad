"""Checks every request passes before a route sees it: the body is read within a time
bound and a size bound, JSON that no decoder should meet (nested 100,000 deep, ``1e400``)
is refused with a 400, a path with a NUL byte is a 404, and the dashboard's pages carry
headers that keep other sites from framing or scripting them.

Reading the body here (instead of in each route) puts one timeout on every route: a
client that promises a ``Content-Length`` and stops sending gets a 408 and its connection
closed after ``limits.body_timeout_s`` without a byte, instead of holding a slot forever.
"""

from __future__ import annotations

import asyncio

from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from herd._engine.render import error_body
from herd._engine.streaming import server_extension
from herd.errors import HerdError
from herd.protocol.limits import json_problem
from herd.settings import Settings

__all__ = ["DASHBOARD_HEADERS", "RequestGuard", "guard_middleware"]

_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_JSON_START = frozenset(b"{[")

DASHBOARD_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; "
        b"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        b"frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
"""Sent with every ``/dashboard`` response (the page keeps the admin key in the browser)."""


class RequestGuard:
    """Bounds the body's size and read time, and refuses unsafe JSON, for every route."""

    __slots__ = ("_body_timeout", "_max_body", "app")

    def __init__(self, app: ASGIApp, max_body: int, body_timeout: float) -> None:
        self.app = app
        self._max_body = max_body
        self._body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if "\x00" in path:
            raise HerdError(404, "no such path")
        if path.startswith("/dashboard"):
            send = _with_dashboard_headers(send)
        if scope["method"] in _NO_BODY_METHODS:
            await self.app(scope, receive, send)
            return
        body = await self.read(scope, receive, send)
        if body is None:
            return  # answered (408) or the client left
        await self.app(scope, _replay(body, receive), send)

    async def read(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, within the bounds; None when answered (408) or the client left.

        Raises:
            HerdError: 413 over the size limit; 400 for JSON no decoder should meet.
        """
        body = self._take_body(scope)  # (a body all here: taken without a coroutine)
        if body is None:
            body = await self._read_body(scope, receive, send)
        if body is not None:
            start = body.lstrip()[:1]
            if start and start[0] in _JSON_START:
                problem = json_problem(body)
                if problem is not None:
                    raise HerdError(400, f"invalid JSON: {problem}")
        return body

    def _take_body(self, scope: Scope) -> bytes | None:
        """The body, when herd's server has all of it already (no receive(), no timer);
        None when it must be read.

        Raises:
            HerdError: 413 when the ``Content-Length`` header, or the body taken, is over
                the limit (checked here for both ways of reading it).
        """
        # (llhttp refuses a request whose Content-Length headers differ)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise self._too_large()
        extension = server_extension(scope)
        take = extension.get("take_body") if extension else None
        body = take(scope) if take is not None else None
        if body is not None and len(body) > self._max_body:
            raise self._too_large()
        return body

    def _too_large(self) -> HerdError:
        return HerdError(413, f"request body too large (over {self._max_body} bytes)")

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        extension = server_extension(scope)
        ready = extension.get("body_ready") if extension else None
        chunks: list[bytes] = []
        size = 0
        while True:
            if ready is not None and ready():  # (no timer for what is already here)
                message = await receive()
            else:
                try:
                    async with asyncio.timeout(self._body_timeout):
                        message = await receive()
                except TimeoutError:
                    await _close_with(send, scope["path"], 408, _timeout_text(self._body_timeout))
                    return None
            if message["type"] != "http.request":
                return None  # http.disconnect: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _timeout_text(seconds: float) -> str:
    return f"the request body did not arrive within {seconds:g}s of its last byte"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body once, then the real channel (disconnects)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _close_with(send: Send, path: str, status: int, message: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": error_body(path, status, message)})


def _with_dashboard_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            have = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(n, v) for n, v in DASHBOARD_HEADERS if n not in have]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return sending


def guard_middleware(settings: Settings) -> list[DefineMiddleware]:
    """The guard for ``create_app``, bounded by ``settings.limits``."""
    limits = settings.limits
    return [
        DefineMiddleware(
            RequestGuard, max_body=limits.max_body_bytes, body_timeout=limits.body_timeout_s
        )
    ]
