"""A chunked reply written past uvicorn's ``send``: its head, its chunks and its end.

Behind herd's own server (:mod:`herd._engine.server`, the scope extension's
``start_chunked`` and ``body_writer``) a streamed reply's bytes are written straight to
the connection: the bytes ``send`` would write, and the request cycle's state set as
``send`` sets it. Whatever herd would not write the same way (framing headers, names
that are not lower-case tokens, control bytes in values) is left to ``send``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from http import HTTPStatus
from operator import itemgetter
from typing import Any

from herd._engine.write_batching import BatchedWrites

__all__ = ["ChunkWriter", "chunked_head"]

# what a response head may carry for herd to write it (anything else goes through uvicorn's
# send, which checks it): lower-case token names, no control bytes in values, and none of
# the headers that decide the framing
# (each checked with bytes.translate, which deletes the allowed bytes: what is left is
# not allowed; a regular expression's character class cost four times as much)
_NAME_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
_VALUE_CHARS = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))
_STATUS_LINES: dict[int, bytes] = {}
_first, _second = itemgetter(0), itemgetter(1)


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase.encode("latin-1")
        except ValueError:
            phrase = b""
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %b" % (status, phrase)
    return line


def chunked_head(status: int, headers: Sequence[tuple[bytes, bytes]], close: bool) -> bytes | None:
    """A chunked response's status line and headers, or None for what herd leaves to uvicorn."""
    names = list(map(_first, headers))
    if (
        not _FRAMING.isdisjoint(names)
        or b"".join(names).translate(None, _NAME_CHARS)
        or b"\t".join(map(_second, headers)).translate(None, _VALUE_CHARS)
    ):
        return None
    lines = [_status_line(status)]
    lines += map(b": ".join, headers)
    if close:
        lines.append(b"connection: close")
    lines.append(b"transfer-encoding: chunked\r\n\r\n")
    return b"\r\n".join(lines)


class ChunkWriter:
    """Writes one chunked response's body past uvicorn's ``send`` (a
    :class:`~herd._engine.streaming.BodyWriter`): the same chunk framing, and the same
    checks of the cycle; :meth:`end` completes the cycle as ``send`` would.

    It runs once per streamed token, so it calls what it can without a Python frame: the
    transport's own write when nothing was gathered this turn, and ``paused`` is
    ``getattr`` on uvicorn's flow control, bound.
    """

    __slots__ = ("batched", "cycle", "flow", "paused", "raw_write")

    def __init__(self, cycle: Any, transport: BatchedWrites, flow: Any) -> None:
        self.cycle = cycle
        self.batched = transport
        self.raw_write = transport.transport.write
        self.flow = flow
        self.paused: Callable[[], bool] = partial(getattr, flow, "write_paused")

    def write(self, data: bytes, now: bool) -> bool:
        cycle, batched = self.cycle, self.batched
        if cycle.disconnected or cycle.response_complete or batched.is_closing():
            return False
        frame = b"%x\r\n%b\r\n" % (len(data), data)
        if not now:
            batched.write(frame)
        elif batched.pending is None:
            self.raw_write(frame)  # (what write_now does when nothing waits)
        else:
            batched.write_now(frame)
        return True

    async def drain(self) -> None:
        await self.flow.drain()

    def end(self) -> bool:
        """Write the response's end and complete the cycle, as uvicorn's ``send`` does for
        a last empty body message; False when the client is gone or it was complete."""
        cycle = self.cycle
        if cycle.disconnected or cycle.response_complete:
            return False
        self.batched.write(b"0\r\n\r\n")  # (the cycle's end below flushes it)
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.batched.close()
        cycle.on_response()
        return True
