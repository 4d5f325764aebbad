"""A lean HTTP/1.1 client for the router's exchanges with one node.

The router spends most of its own time per streamed request in its HTTP client; this one
does only what a node exchange needs: one ``transport.write`` per request, replies parsed
by llhttp (``httptools``, in C: Content-Length, chunked with extensions and trailers, and
close-delimited bodies), and a keep-alive pool of idle connections to the node.

Timeouts: ``connect_timeout`` for a new connection, a per-request ``first_byte_timeout``
deadline that runs until the caller says it has what it waited for
(:meth:`NodeResponse.end_deadline`), and ``read_timeout`` for silence while a reply is
being received. A pooled connection the node closed while idle (nothing of the reply came)
is retried once on a fresh connection. No redirects are followed; ``HEAD`` is not spoken.

Example:
    >>> client = NodeHttpClient("http://127.0.0.1:11434", read_timeout=60)
    >>> client.origin
    ('http', '127.0.0.1', 11434)
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from herd import __version__
from herd.node_http_wire import (
    READ_BUFFER_LIMIT,
    NodeConnectError,
    NodeConnection,
    NodeDisconnected,
    NodeHttpError,
    NodeResponse,
    ReplyIncomplete,
    ReplyInvalid,
    connect_reason,
)

__all__ = [
    "READ_BUFFER_LIMIT",
    "USER_AGENT",
    "NodeConnectError",
    "NodeDisconnected",
    "NodeHttpClient",
    "NodeHttpError",
    "NodeResponse",
    "ReplyIncomplete",
    "ReplyInvalid",
]

#: What herd calls itself to a node: a node's logs name the router, and a proxy in front of
#: a node that refuses requests without a User-Agent (Cloudflare's browser check does)
#: lets herd's through.
USER_AGENT = f"herd/{__version__}"

_default_tls: ssl.SSLContext | None = None


class NodeHttpClient:
    """HTTP/1.1 to one node (``scheme://host:port`` with an optional path prefix), with a
    pool of at most ``max_idle`` idle keep-alive connections.

    Args:
        base_url: The node's URL; ``https`` uses TLS with ``ssl_context`` or, by default,
            the system's trusted certificates (an untrusted certificate is refused).
            ``user:password@`` in it is sent as HTTP basic auth, never in ``Host``.
        connect_timeout: Seconds to open a connection (TLS handshake included).
        read_timeout: Seconds of silence tolerated while a reply is received.
        max_idle: Idle connections kept for reuse.
        idle_seconds: An idle connection older than this is closed, not reused.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        max_idle: int = 32,
        idle_seconds: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        tls = parts.scheme == "https"
        self.origin = (parts.scheme, parts.hostname, parts.port or (443 if tls else 80))
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._ssl = ssl_context
        self._tls = tls
        self._prefix = parts.path.rstrip("/")
        host = parts.netloc.rpartition("@")[2]  # never the URL's credentials
        self._host_line = f"Host: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
        if parts.username is not None:  # a node behind a proxy with basic auth, as aiohttp did
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
            self._host_line += f"Authorization: Basic {token}\r\n"
        self._idle: deque[NodeConnection] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        first_byte_timeout: float | None = None,
    ) -> NodeResponse:
        """Send one request and return once the reply's status line and headers came.

        ``first_byte_timeout`` (seconds, from now) bounds the wait for the headers, and
        after them until :meth:`NodeResponse.end_deadline` or the reply's end.

        Raises:
            NodeHttpError: no connection, or the node closed it or spoke no HTTP.
            TimeoutError: a timeout passed.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that opened them
            self._idle.clear()
            self._loop = loop
        message = self._encode(method, path, body, headers)
        now = loop.time()
        deadline = now + first_byte_timeout if first_byte_timeout is not None else None
        conn = self._take_idle(now)
        if conn is not None:
            response = conn.send(message, deadline)
            try:
                return await self._head(response)
            except NodeDisconnected:
                if response.got_bytes:
                    raise
                # The node closed this idle connection as we sent (it may have restarted):
                # the other idle ones are suspect too.
                self._close_idle()
        conn = await self._connect(loop, deadline)
        return await self._head(conn.send(message, deadline))

    async def close(self) -> None:
        """Close the idle connections; ones still receiving close when their reply ends.

        A request after this still works (a backend being replaced may have one in
        flight), on a connection of its own that is not kept."""
        self._closed = True
        self._close_idle()

    async def _head(self, response: NodeResponse) -> NodeResponse:
        try:
            while not response.head_done:
                if response._error is not None:
                    raise response._error
                await response._wait()
        except BaseException:
            response.close()
            raise
        return response

    def _encode(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None
    ) -> bytes:
        head = f"{method} {self._prefix}{path} HTTP/1.1\r\n{self._host_line}"
        if headers:
            for name, value in headers.items():
                if "\r" in value or "\n" in value:
                    raise ValueError(f"header {name} has a line break")
                head += f"{name}: {value}\r\n"
        if body is None:
            return (head + "\r\n").encode("latin-1")
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body

    def _take_idle(self, now: float) -> NodeConnection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()  # the most recent: least likely to have been closed
            if conn.closed or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self.idle_seconds:
                conn.closed = True
                conn.transport.close()
                self._close_idle()  # the rest are older still
                return None
            return conn
        return None

    def _close_idle(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            conn.closed = True
            conn.transport.close()

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> NodeConnection:
        _, host, port = self.origin
        tls = self._ssl or (_default_context() if self._tls else None)
        limit = self.connect_timeout
        if deadline is not None:
            limit = max(0.0, min(limit, deadline - loop.time()))
        try:
            async with asyncio.timeout(limit):
                _, conn = await loop.create_connection(
                    lambda: NodeConnection(loop, self.read_timeout, self._release),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
        except OSError as exc:
            raise NodeConnectError(host, port, connect_reason(exc)) from exc
        return conn

    def _release(self, conn: NodeConnection, keep_alive: bool) -> None:
        if not keep_alive or self._closed or conn.closed or len(self._idle) >= self.max_idle:
            conn.closed = True
            conn.transport.close()
            return
        if not conn.transport.is_reading():  # paused by the reply just completed
            conn.transport.resume_reading()
        conn.reused = True
        conn.idle_since = conn.loop.time()
        self._idle.append(conn)


def _default_context() -> ssl.SSLContext:
    global _default_tls
    if _default_tls is None:  # loading the system's certificates takes milliseconds: once
        _default_tls = ssl.create_default_context()
    return _default_tls
