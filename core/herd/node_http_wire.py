"""The wire under :mod:`herd.node_http`: one keep-alive connection to a node (an asyncio
``Protocol`` feeding llhttp through ``httptools``), the reply it is receiving, and the
errors an exchange can end in, each saying why in plain words.

Parsing is llhttp's (Content-Length, chunked with extensions and trailers, and
close-delimited bodies, whose end is the close). Body bytes wait in the reply until read;
past :data:`READ_BUFFER_LIMIT` unread the connection stops reading from the socket, so a
slow reader holds the node back instead of filling memory.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable

import httptools

from herd.header_text import decode_header_pairs

__all__ = [
    "READ_BUFFER_LIMIT",
    "NodeConnectError",
    "NodeConnection",
    "NodeDisconnected",
    "NodeHttpError",
    "NodeResponse",
    "ReplyIncomplete",
    "ReplyInvalid",
    "connect_reason",
]

#: Unread reply bytes past which the connection stops reading until the caller catches up.
READ_BUFFER_LIMIT = 1 << 20


class NodeHttpError(Exception):
    """An exchange with a node failed; ``str()`` says why in plain words."""


class NodeConnectError(NodeHttpError):
    """No connection: ``cannot connect to 10.0.0.5:11434: Connection refused``."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {reason}")


class NodeDisconnected(NodeHttpError):
    """The node closed the connection before any byte of its reply."""

    def __init__(self) -> None:
        super().__init__("the node closed the connection")


class ReplyIncomplete(NodeHttpError):
    """The connection closed (or was closed) part way through the reply."""

    def __init__(self) -> None:
        super().__init__("the connection closed before the reply was complete")


class ReplyInvalid(NodeHttpError):
    """The node's bytes are not HTTP/1.x."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the node's reply is not valid HTTP ({detail})")


def connect_reason(exc: OSError) -> str:
    """Why a connection could not be opened, in plain words."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    return os.strerror(exc.errno)  # asyncio's own text is "Connect call failed (...)"


class NodeResponse:
    """A reply whose status line and headers have arrived; the body comes by :meth:`read`.

    Attributes:
        status: The HTTP status.
        headers: Header names in lower case (a repeated header keeps its last value).
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_error",
        "_loop",
        "_paused",
        "_waiter",
        "close_delimited",
        "complete",
        "got_bytes",
        "head_done",
        "headers",
        "informational",
        "listener",
        "status",
    )

    def __init__(self, conn: NodeConnection) -> None:
        self._conn: NodeConnection | None = conn
        self._loop = conn.loop
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False  # the connection stopped reading until this reply is taken
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_done = self.complete = self.got_bytes = False
        self.close_delimited = self.informational = False
        # Called (instead of waking a reader) when body bytes, the end or an error arrive:
        # a caller that takes the body as it comes (see take) sets it.
        self.listener: Callable[[], None] | None = None

    def take(self) -> bytes:
        """The body bytes that arrived since the last call, without waiting (``b""`` when
        none did: see ``complete`` for whether more will). Raises :class:`NodeHttpError` or
        ``TimeoutError`` once the bytes that came before the failure are taken."""
        chunks = self._chunks
        if chunks:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self._buffered = 0
            if self._paused:  # paused in data_received: caught up now
                self._paused = False
                conn = self._conn
                if conn is not None and not conn.transport.is_reading():
                    conn.transport.resume_reading()
            return data
        if self._error is not None:
            raise self._error
        return b""

    async def read(self) -> bytes:
        """The body bytes that arrived since the last call (waiting for some); ``b""`` once
        the reply is complete. Raises :class:`NodeHttpError` or ``TimeoutError``."""
        while True:
            data = self.take()
            if data or self.complete:
                return data
            self._waiter = waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def read_all(self) -> bytes:
        """The rest of the body, whole."""
        parts = []
        while data := await self.read():
            parts.append(data)
        return b"".join(parts)

    def end_deadline(self) -> None:
        """The caller has what ``first_byte_timeout`` bounded; silence is now bounded by
        ``read_timeout`` alone."""
        if self._conn is not None:
            self._conn.cancel_deadline()

    def close(self) -> None:
        """Abandon the reply: a connection still receiving it is closed (which stops the
        node's work); a complete reply's connection is already back in the pool."""
        conn, self._conn = self._conn, None
        if conn is not None and not self.complete:
            conn.abandon()
            self._fail(ReplyIncomplete())  # a reader waiting in another task must wake

    async def _wait(self) -> None:
        self._waiter = waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self.listener is not None:
            self.listener()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        self._conn = None
        if self._error is None:
            self._error = error
        self._wake()


class NodeConnection(asyncio.Protocol):
    """One keep-alive connection; at most one reply in flight (no pipelining)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float,
        release: Callable[[NodeConnection, bool], None],
    ) -> None:
        self.loop = loop
        self.read_timeout = read_timeout
        self.release = release  # called when a reply is complete: keep-alive or not
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        # llhttp calls these two C methods directly: no Python frame per header or per
        # body chunk (a streamed reply is one chunk per token). httptools looks its
        # callbacks up once, when the parser is made, so they are set before it.
        self.body: list[bytes] = []
        self.raw_headers: dict[bytes, bytes] = {}
        self.on_body = self.body.append
        self.on_header = self.raw_headers.__setitem__
        self.parser = httptools.HttpResponseParser(self)
        self.response: NodeResponse | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.last_data = 0.0
        self._deadline: asyncio.TimerHandle | None = None
        self._silence: asyncio.TimerHandle | None = None

    # --- the exchange ---

    def send(self, message: bytes, deadline: float | None) -> NodeResponse:
        self.response = response = NodeResponse(self)
        loop = self.loop
        self.last_data = now = loop.time()
        if deadline is not None:
            self._deadline = loop.call_at(deadline, self._deadline_passed)
        self._silence = loop.call_at(now + self.read_timeout, self._check_silence)
        self.transport.write(message)
        return response

    def cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _stop_clocks(self) -> None:
        self.cancel_deadline()
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        self._fail(TimeoutError())

    def _check_silence(self) -> None:
        self._silence = None
        if self.response is None:
            return
        now = self.loop.time()
        if self.transport.is_reading():
            quiet = now - self.last_data
            if quiet + 0.001 >= self.read_timeout:
                self._fail(TimeoutError())
                return
        else:  # paused for a slow reader: that is not the node's silence
            self.last_data = now
        self._silence = self.loop.call_at(self.last_data + self.read_timeout, self._check_silence)

    def _fail(self, error: BaseException) -> None:
        response, self.response = self.response, None
        self._stop_clocks()
        self.closed = True
        self.transport.close()
        if response is not None:
            response._fail(error)

    def abandon(self) -> None:
        self.response = None
        self._stop_clocks()
        self.closed = True
        self.transport.close()

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # a node talking out of turn: not trusted with another request
            self.closed = True
            self.transport.close()
            return
        response.got_bytes = True
        self.last_data = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._take_body(response)  # what came before the bad bytes is still read
            if self.response is response:
                self._fail(ReplyInvalid(" ".join(str(exc).split()) or type(exc).__name__))
            else:  # bytes after a complete reply: not trusted with another request
                self.closed = True
                self.transport.close()
                response._wake()  # its reader still has the reply's end to see
            return
        body = self.body  # inlined _take_body and _wake: this runs once per streamed token
        listener = response.listener
        if body:
            response._chunks += body
            body.clear()
            # (a listener takes every byte at once: nothing is left to count)
            if listener is None:
                response._buffered += len(data)
                over = response._buffered > READ_BUFFER_LIMIT
                if over and self.response is response and self.transport.is_reading():
                    self.transport.pause_reading()  # until the reader catches up (read())
                    response._paused = True
        if listener is not None:
            listener()
            return
        waiter = response._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take_body(self, response: NodeResponse) -> None:
        response._chunks += self.body
        self.body.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response, self.response = self.response, None
        self._stop_clocks()
        if response is None:
            return
        if response.head_done and response.close_delimited:
            response.complete = True  # the end of a close-delimited body is the close
            response._conn = None
            response._wake()
        elif response.got_bytes:
            response._fail(ReplyIncomplete())
        else:
            response._fail(NodeDisconnected())

    # --- llhttp's callbacks ---

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        raw = self.raw_headers
        headers = dict(decode_header_pairs(list(raw.items()), lower=True))
        raw.clear()
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 103 Early Hints and the like: the real reply follows
            response.informational = True
            return
        response.status = status
        response.headers = headers
        response.head_done = True
        response.close_delimited = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )

    def on_message_complete(self) -> None:
        response = self.response
        assert response is not None
        if response.informational:
            response.informational = False
            return
        self._take_body(response)
        response.complete = True
        response._conn = None
        self.response = None
        self._stop_clocks()
        self.release(self, self.parser.should_keep_alive())
