"""Relaying a node's stream to the client, for :meth:`Exchange.stream`.

Each block the node sends is checked as JSON lines (:class:`~herd._engine.node_lines.
NodeLines`), renamed back to the client's model name when an alias was served, translated
into the client's protocol, and written. A break after the first byte (a broken line, an
in-band error, a stream that ends without its final object, a node that dies) becomes an
error frame in the client's protocol; the exchange is finished exactly once, whatever ends
the stream.

Two ways to drive it, one set of rules (:class:`RelayRun`): :func:`relay`, an async
iterator a response writes from its task, and :class:`RelayPump`, which writes each block
from the node connection's own callback when the reply can be watched
(:meth:`~herd.replies.UpstreamReply.watch`) and herd's server gives a direct body writer
(``streaming.py``): no task is woken, and no coroutine resumed, per token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from herd._engine.client_watch import ROUTER_STOPPED
from herd._engine.node_lines import STREAMING, Transform
from herd.interfaces import StreamBroken

if TYPE_CHECKING:
    from herd._engine.exchange import Exchange
    from herd.interfaces import UpstreamReply

__all__ = ["ENDED", "FAILED", "LOST", "PAUSED", "RelayBody", "RelayPump", "RelayRun", "relay"]


class RelayRun:
    """One stream's relay rules: what each block becomes, and how the stream ended."""

    __slots__ = (
        "attempt",
        "error",
        "error_frame",
        "exchange",
        "failed",
        "lines",
        "rename",
        "slot",
        "status",
        "translate",
    )

    def __init__(
        self,
        exchange: Exchange,
        translate: Transform | None,
        error_frame: Callable[[str], bytes],
    ) -> None:
        attempt = exchange.attempt
        assert attempt is not None
        self.exchange = exchange
        self.attempt = attempt
        # (read once: the stream starts after its node was chosen, and they stay)
        self.slot = attempt.slot
        self.lines = exchange.lines
        self.rename = exchange.rename
        self.translate = translate
        self.error_frame = error_frame
        self.status, self.error = "completed", ""
        self.failed = False  # a bad line was met: nothing more is relayed

    def first(self) -> bytes:
        """The node's first line, for the client."""
        first = self.attempt.reply.first
        if self.rename is not None:
            first = self.rename(first)
        return self.translate(first) if self.translate is not None else first

    def block(self, block: bytes) -> bytes:
        """A block of whole lines, for the client (with an error frame after a bad line)."""
        self.slot.chunks += 1  # the zombie reaper sees the request progress
        good = self.lines.check(block)
        if good < len(block):
            return self._broken_line(block[:good])
        if self.rename is not None:
            block = self.rename(block)
        return self.translate(block) if self.translate is not None else block

    def _broken_line(self, good: bytes) -> bytes:
        """The lines before a bad one, and the error frame: nothing more is relayed."""
        self.status = "failed"
        self.error = f"node {self.attempt.node.name}: {self.lines.bad}"
        self.failed = True
        out = b""
        if good:
            if self.rename is not None:
                good = self.rename(good)
            out = self.translate(good) if self.translate is not None else good
        return out + self.error_frame(self.error)

    def end(self) -> bytes:
        """The stream ran out: an error frame when it ended without its final line."""
        if self.status != "completed":
            return b""
        lines = self.lines
        if lines.error:
            self.status, self.error = "failed", lines.error
        elif lines.final is None and self.exchange.endpoint in STREAMING:
            self.status = "failed"
            self.error = f"node {self.attempt.node.name} ended the stream early"
            return self.error_frame(self.error)
        return b""

    def broken(self, exc: StreamBroken) -> bytes:
        """The node's stream broke: the error frame."""
        self.status = "failed"
        self.error = f"node {self.attempt.node.name} failed mid-stream: {exc}"
        return self.error_frame(self.error)

    def stopped(self, exc: BaseException) -> None:
        """The relay stopped before the stream's end: the client left, the router stopped
        past its grace period, or herd broke."""
        if isinstance(exc, Exception):
            self.status, self.error = "failed", f"internal error: {exc!r}"
        elif self.exchange.watch is not None and self.exchange.watch.stopping:
            self.status, self.error = "failed", ROUTER_STOPPED
        else:
            self.status, self.error = "client_disconnected", "client disconnected"

    def router_stopped(self) -> bytes:
        """The router stops past its grace period: the error frame that ends the answer
        (its client reads an error, never an answer silently cut short)."""
        self.status, self.error = "failed", ROUTER_STOPPED
        return self.error_frame(ROUTER_STOPPED)

    def finish(self, ended: bool) -> None:
        """Finish the exchange: after the response's last write when the stream ran to
        its end (``ended``), else now."""
        if ended:
            self.exchange.stream_ended(self.status, self.error)
        else:
            self.exchange.done(self.status, self.error)


async def relay(
    exchange: Exchange,
    translate: Transform | None,
    error_frame: Callable[[str], bytes],
    blocks: bool,
) -> AsyncIterator[bytes]:
    """The node's lines for the client (see the module docstring)."""
    run = RelayRun(exchange, translate, error_frame)
    reply = run.attempt.reply
    ended = False  # ran to its end: the response's last write comes next
    try:
        if out := run.first():
            yield out
        async for block in reply.rest_blocks() if blocks else reply.rest():
            if out := run.block(block):
                yield out
            if run.failed:
                break
        if out := run.end():
            yield out
        ended = True
    except StreamBroken as exc:
        yield run.broken(exc)
        ended = True
    except BaseException as exc:  # the client went away (or herd broke): never the node
        run.stopped(exc)
        raise
    finally:
        await reply.aclose()
        run.finish(ended)


class RelayBody:
    """:meth:`Exchange.stream`'s answer: the relay as an async iterator (:func:`relay`),
    or, for a response that can write from callbacks, a :class:`RelayPump` (:meth:`pump`).
    """

    __slots__ = ("_iterator", "blocks", "error_frame", "exchange", "started", "translate")

    def __init__(
        self,
        exchange: Exchange,
        translate: Transform | None,
        error_frame: Callable[[str], bytes],
        blocks: bool,
    ) -> None:
        self.exchange = exchange
        self.translate = translate
        self.error_frame = error_frame
        self.blocks = blocks
        self.started = False
        self._iterator: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterator is None:
            self.started = True
            self._iterator = relay(self.exchange, self.translate, self.error_frame, self.blocks)
        return self._iterator

    def __anext__(self) -> Awaitable[bytes]:
        return self.__aiter__().__anext__()

    def pump(
        self, write: Callable[[bytes, bool], bool], client_paused: Callable[[], bool]
    ) -> RelayPump | None:
        """A started :class:`RelayPump`; None when the reply cannot be watched (iterate
        this instead)."""
        if self.started:
            return None
        run = RelayRun(self.exchange, self.translate, self.error_frame)
        pump = RelayPump(run, write, client_paused, not self.blocks)  # (by_line; positional)
        if not pump.start():
            return None
        self.started = True
        return pump


#: How a pump's wait ended (the result of :meth:`RelayPump.wait`); after FAILED, the
#: exception is the pump's ``error``.
ENDED, PAUSED, LOST, FAILED = "ended", "paused", "lost", "failed"


class RelayPump:
    """Writes a watched reply's blocks from the node connection's callback.

    Args:
        run: The stream's rules.
        write: Writes bytes to the client (``now``: at once, else with whatever else is
            written in this turn of the event loop); returns False when the client is gone.
        client_paused: Whether the client's connection asked to stop writing (its buffer
            is full); the pump then stops taking until :meth:`resume`.
        by_line: Hand the rules one line at a time (a translator's way), not whole blocks.

    The response's task starts it, then waits (:meth:`wait`) for the stream's end, a
    full client buffer (it drains it and calls :meth:`resume`) or the client leaving
    (:meth:`lost`, called by the server). The task writes the response's end and
    finishes the exchange (:meth:`close`).
    """

    __slots__ = (
        "_waiter",
        "by_line",
        "client_paused",
        "ended",
        "error",
        "reply",
        "run",
        "state",
        "write",
    )

    def __init__(
        self,
        run: RelayRun,
        write: Callable[[bytes, bool], bool],
        client_paused: Callable[[], bool],
        by_line: bool = False,
    ) -> None:
        self.run = run
        self.by_line = by_line
        self.reply: UpstreamReply = run.attempt.reply
        self.write = write
        self.client_paused = client_paused
        self.state = ""  # ENDED, PAUSED, LOST or FAILED once the pump stopped taking
        self.ended = False  # the stream ran to its end (normally, broken or refused)
        self.error: Exception | None = None  # what broke the pump (state FAILED)
        self._waiter: asyncio.Future[str] | None = None

    def start(self) -> bool:
        """Write the first line and whatever came since; False when the reply cannot be
        watched (nothing written: the caller relays it with :func:`relay`)."""
        if not self.reply.watch(self._ready):
            return False
        out = self.run.first()
        if out and not self.write(out, False):  # joined with the headers, in one write
            self._stop(LOST)
            return True
        self._ready()
        return True

    def resume(self) -> None:
        """The client's buffer drained: take what came meanwhile, and what comes."""
        if self.state != PAUSED:
            return  # the client left meanwhile
        self.state = ""
        self.reply.watch(self._ready)
        self._ready()

    def lost(self) -> None:
        """The client's connection was lost."""
        if not self.state:
            self._stop(LOST)

    async def wait(self) -> str:
        """Until the pump stops taking: :data:`ENDED`, :data:`PAUSED`, :data:`LOST` or
        :data:`FAILED`."""
        if not self.state:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.state

    def router_stopped(self) -> bytes:
        """Stop for the router's shutdown: the error frame that ends the answer."""
        if not self.state:
            self._stop(LOST)
        self.ended = True
        return self.run.router_stopped()

    async def close(self, exc: BaseException | None = None) -> None:
        """Close the reply and finish the exchange (``exc``: why the task stopped early)."""
        if not self.state:
            self._stop(LOST)
        if not self.ended:
            why = exc if exc is not None else self.error
            self.run.stopped(why if why is not None else asyncio.CancelledError())
        await self.reply.aclose()
        self.run.finish(self.ended)

    def _ready(self) -> None:
        if self.state:
            return
        run, reply = self.run, self.reply
        out = b""
        try:
            block = reply.take_blocks()
            while block:
                if self.by_line:  # a translator takes one line at a time
                    for line in block.split(b"\n")[:-1]:  # whole lines: the last piece is b""
                        out += run.block(line + b"\n")
                        if run.failed:
                            break
                else:
                    out += run.block(block)
                if run.failed:
                    self.ended = True
                    break
                # all that came was taken: more comes with the next call, but the end is
                # taken now (no call announces it)
                block = reply.take_blocks() if reply.taken_all else b""
            if block is None:
                out += run.end()
                self.ended = True
        except StreamBroken as exc:
            out += run.broken(exc)
            self.ended = True
        except Exception as exc:  # herd broke: the task raises it, as the relay would
            self.error = exc
            self._stop(FAILED)
            return
        if self.ended:
            # The task is woken first: the response's end it writes leaves with these bytes.
            self._stop(ENDED)
            if out:
                self.write(out, False)
        elif out and not self.write(out, True):
            self._stop(LOST)
        elif self.client_paused():
            self._stop(PAUSED)

    def _stop(self, state: str) -> None:
        self.state = state
        self.reply.watch(None)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(state)
