"""Relaying a node's stream to the client, for :meth:`Exchange.stream`.

Each block the node sends is checked as JSON lines (:class:`~herd._engine.node_lines.
NodeLines`), renamed back to the client's model name when an alias was served, translated
into the client's protocol, and written. A break after the first byte (a broken line, an
in-band error, a stream that ends without its final object, a node that dies) becomes an
error frame in the client's protocol; the exchange is finished exactly once, whatever ends
the stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from herd._engine.node_lines import STREAMING, Transform
from herd.interfaces import StreamBroken

if TYPE_CHECKING:
    from herd._engine.exchange import Exchange

__all__ = ["relay"]


async def relay(
    exchange: Exchange,
    translate: Transform | None,
    error_frame: Callable[[str], bytes],
    blocks: bool,
) -> AsyncIterator[bytes]:
    """The node's lines for the client (see the module docstring)."""
    attempt = exchange.attempt
    assert attempt is not None
    reply, slot, lines, rename = attempt.reply, attempt.slot, exchange.lines, exchange.rename
    status, error = "completed", ""
    ended = False  # ran to its end: the response's last write comes next
    try:
        first = rename(reply.first) if rename is not None else reply.first
        out = translate(first) if translate is not None else first
        if out:
            yield out
        async for block in reply.rest_blocks() if blocks else reply.rest():
            slot.chunks += 1  # the zombie reaper sees the request progress
            good = lines.check(block)
            if good < len(block):
                block = block[:good]
                status, error = "failed", f"node {attempt.node.name}: {lines.bad}"
            if block:
                if rename is not None:
                    block = rename(block)
                if translate is None:
                    yield block
                elif out := translate(block):
                    yield out
            if status == "failed":
                yield error_frame(error)
                break
        if status == "completed":
            if lines.error:
                status, error = "failed", lines.error
            elif lines.final is None and exchange.endpoint in STREAMING:
                status, error = "failed", f"node {attempt.node.name} ended the stream early"
                yield error_frame(error)
        ended = True
    except StreamBroken as exc:
        status, error = "failed", f"node {attempt.node.name} failed mid-stream: {exc}"
        yield error_frame(error)
        ended = True
    except BaseException as exc:  # the client went away (or herd broke): never the node
        status = "failed" if isinstance(exc, Exception) else "client_disconnected"
        error = f"internal error: {exc!r}" if isinstance(exc, Exception) else "client disconnected"
        raise
    finally:
        await reply.aclose()
        if ended:
            exchange.stream_ended(status, error)
        else:
            exchange.done(status, error)
