"""One socket write per loop turn for each client connection.

uvicorn writes every ASGI message at once: the status line and headers, each body chunk,
then the chunked terminator, each its own ``write`` system call and TCP segment. A
streamed reply whose node answered in one read went out as four writes (headers, the
first line, which the relay checks on its own, the rest, ``0\\r\\n\\r\\n``). On loopback a
write also runs the receiver's side of TCP, so each costs the router tens of microseconds.

:class:`BatchedWrites` stands in front of the connection's transport and joins whatever is
written during one turn of the event loop into one write, made at the start of the next
turn (a ``call_soon``), the way event-driven proxies flush a connection's output once per
event rather than once per call. A token stream, whose writes are a turn or more apart,
still goes out chunk by chunk with no added wait; only writes made back to back are
joined. Everything but ``write``, ``writelines``, ``write_eof``, ``close`` and ``abort`` is
the real transport's own (flow control, extra info, reading). A connection upgraded to a
WebSocket gets its own transport back (``server.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["BatchedWrites"]


class BatchedWrites:
    """A transport whose writes within one loop turn leave as one write."""

    __slots__ = (
        "_flush_call",
        "_loop",
        "_transport",
        "get_extra_info",
        "is_closing",
        "pause_reading",
        "pending",
        "resume_reading",
    )

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        # what this turn gathered (None when nothing): a writer that finds None may write
        # straight to the transport, as write_now would
        self.pending: list[bytes] | None = None
        self._flush_call: asyncio.Handle | None = None  # the flush this turn asked for
        # the server's calls on every request, bound once (not looked up through __getattr__)
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.get_extra_info = transport.get_extra_info

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if type(data) is not bytes:
            data = bytes(data)  # a caller's buffer may change before the flush
        pending = self.pending
        if pending is None:
            self.pending = [data]
            self._flush_call = self._loop.call_soon(self.flush)
        else:
            pending.append(data)

    def write_now(self, data: bytes) -> None:
        """Write ``data`` at once, after (and with) what this turn gathered so far."""
        pending = self.pending
        if pending is not None:
            self.pending = None
            # Left asked for, its flush would run in the next turn after that turn's
            # reads but before the callbacks they ask for, and write early what those
            # were to join (a stream's last lines, leaving its end a write of its own).
            self._flush_call.cancel()  # type: ignore[union-attr]
            pending.append(data)
            data = b"".join(pending)
        self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Write what this turn gathered (nothing when it was already flushed)."""
        pending = self.pending
        if pending is None:
            return
        self.pending = None
        transport = self._transport
        if transport.is_closing():
            return  # the connection went: nobody is left to read it
        transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    @property
    def transport(self) -> asyncio.Transport:
        """The connection's own transport (writes made through it are not joined)."""
        return self._transport

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self.pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
