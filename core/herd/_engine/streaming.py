"""A streamed response for the relay: no anyio task group, no header machinery per response.

Litestar's ``Stream`` runs every response in a task group (one task writes, the handler
waits for a disconnect), which costs the router CPU on every streamed request. Here the
writer is the request's own task. When the client goes, the writer is cancelled, so the
Exchange sees the abort at once (it closes the node's stream, which stops generation
there) exactly as with ``Stream``. Behind herd's own server the connection's loss calls
back (``DISCONNECT_CALLBACKS``); behind any other server a future waits on ``receive()``
for ``http.disconnect`` (a task per response: about 3% of a streamed chat's instructions).

Behind herd's own server a relay whose reply can be watched is not written by the task at
all: the task hands the stream to a :class:`~herd._engine.relay.RelayPump` (through the
extension's ``body_writer``) and waits for its end (``_pump_body``).

The relay's responses carry a few plain headers and no cookies or background task, so
they are encoded here in one pass (the same bytes Litestar sends: lower-case names, a
``charset`` on ``text/`` types); Litestar's general path (``MutableScopeHeaders``, cookie
and background merging) cost about 40 us a request. Anything else takes that path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from litestar.response import Stream
from litestar.response.streaming import ASGIStreamingResponse
from litestar.utils.helpers import get_enum_string_value

from herd._engine.client_watch import ROUTER_STOPPED
from herd._engine.relay import ENDED, FAILED, PAUSED, RelayBody

if TYPE_CHECKING:
    from herd._engine.client_watch import ClientWatch
    from herd._engine.exchange import Exchange
    from herd._engine.relay import RelayPump

__all__ = ["DISCONNECT_CALLBACKS", "BodyWriter", "RelayStream", "server_extension"]

#: The scope extension herd's server (``server.py``) gives every request. As ASGI has every
#: extension, its value is a dict:
#:
#: - ``"on_lost"``: a set the app may add a callable to, called when the client's
#:   connection is lost. A relay response uses it instead of a task per response waiting
#:   on ``receive()`` for ``http.disconnect``; so does a request waiting for a node
#:   (:mod:`herd._engine.client_watch`).
#: - ``"client_watch"``: the connection's :class:`~herd._engine.client_watch.ClientWatch`:
#:   whether it is lost already (``left``: a callback added after that moment is never
#:   called), and the watch over a request waiting for a node.
#: - ``"body_writer"``: a callable giving, once ``http.response.start`` was sent, a
#:   :class:`BodyWriter` for the response, or None when its body cannot be written past
#:   ``send`` (not chunked, or the client left). A relay then writes each node block from
#:   the node connection's callback (:class:`~herd._engine.relay.RelayPump`).
#: - ``"start_chunked"``: a callable ``(scope, send, status, headers)`` that writes a
#:   chunked response's head, as ``http.response.start`` through ``send`` would, and gives
#:   its :class:`BodyWriter`; or None, having written nothing, when it leaves the start to
#:   ``send`` (a middleware wraps ``send``, the response is no plain chunked one).
#: - ``"body_ready"``: a callable telling whether the request's next ``receive()`` will
#:   return without waiting (its body is here). The body is then read without a timer
#:   (:mod:`herd._engine.guard`).
#: - ``"take_body"``: a callable ``(scope)`` giving the request's whole body when all of it
#:   is here and nothing else would happen on ``receive()`` (no ``100 Continue`` to
#:   write): the bytes ``receive()`` would return, taken without a wait. None otherwise,
#:   having taken nothing; the body is then read through ``receive()``.
DISCONNECT_CALLBACKS = "herd.disconnect_callbacks"


def server_extension(scope: Any) -> dict[str, Any] | None:
    """The request's ``DISCONNECT_CALLBACKS`` extension; None behind another server."""
    extensions = scope.get("extensions")
    return extensions.get(DISCONNECT_CALLBACKS) if extensions else None


class BodyWriter(Protocol):
    """Writes a chunked response's body bytes without ``send`` (see ``DISCONNECT_CALLBACKS``)."""

    def write(self, data: bytes, now: bool) -> bool:
        """Write ``data`` as one chunk: at once (``now``) or with the rest of this loop
        turn's writes. False when the client is gone or the response is complete."""

    def paused(self) -> bool:
        """The client's connection asked to stop writing (its buffer is full)."""

    async def drain(self) -> None:
        """Until the client's connection can be written to again (or was lost)."""

    def end(self) -> bool:
        """Write the response's end and complete it, as a last empty body message through
        ``send`` would. False when the client is gone or the response was complete."""


async def _pump_body(
    pump: RelayPump,
    writer: BodyWriter,
    send: Any,
    after_send: Callable[[], None] | None,
    on_lost: set[Callable[[], None]],
) -> None:
    """Wait while ``pump`` writes the body from callbacks; then write the response's end."""
    on_lost.add(pump.lost)
    stopped: BaseException | None = None
    try:
        state = await pump.wait()
        while state == PAUSED:
            await writer.drain()
            pump.resume()
            state = await pump.wait()
        if state == ENDED:
            if writer.paused():
                await writer.drain()
            if not writer.end():  # (the client left: send says so its own way)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif state == FAILED:
            assert pump.error is not None
            raise pump.error
    except asyncio.CancelledError as exc:
        watch = pump.run.exchange.watch
        if pump.ended or watch is None or not watch.stopping:
            stopped = exc
            raise
        # the router stops past its grace period: the answer ends with an error frame
        writer.write(pump.router_stopped(), True)
        writer.end()
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
    except BaseException as exc:
        stopped = exc
        raise
    finally:
        on_lost.discard(pump.lost)
        await pump.close(stopped)
        if after_send is not None:
            after_send()


async def _send_body(
    iterator: AsyncIterator[bytes],
    send: Any,
    receive: Any,
    after_send: Callable[[], None] | None = None,
    on_lost: set[Callable[[], None]] | None = None,
    watch: ClientWatch | None = None,
) -> None:
    """Write every chunk; stop quietly (cancelling the writer) when the client leaves.

    ``after_send`` runs once the last write is made (or the writing stopped). ``on_lost``
    is herd's server's set of callbacks for a lost connection (see ``DISCONNECT_CALLBACKS``);
    without it a task waits on ``receive()`` for ``http.disconnect``. ``watch`` tells whether
    the connection was lost before the writing began: it then stops at the first chunk.
    """
    task = asyncio.current_task()
    assert task is not None
    writing, left = True, False

    def on_left() -> None:
        nonlocal left
        if writing and not left:
            left = True
            task.cancel()

    def on_message(listener: asyncio.Future[Any]) -> None:
        if listener.cancelled() or listener.exception() is not None:
            return
        if listener.result().get("type") == "http.disconnect":
            on_left()

    listener: asyncio.Future[Any] | None = None
    if on_lost is not None:
        on_lost.add(on_left)
        if watch is not None and watch.left:  # (gone before the response began)
            on_left()
    else:
        listener = asyncio.ensure_future(receive())
        listener.add_done_callback(on_message)
    try:
        async for chunk in iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if left:
            task.uncancel()  # the client left: the response simply ends here
        elif watch is not None and watch.stopping and isinstance(iterator, RelayBody):
            # the router stops past its grace period: the answer ends with an error frame
            task.uncancel()
            frame = iterator.error_frame(ROUTER_STOPPED)
            await send({"type": "http.response.body", "body": frame, "more_body": False})
        else:
            raise  # cancelled from outside: not ours to swallow
    finally:
        writing = False
        if listener is not None:
            listener.cancel()
        else:
            on_lost.discard(on_left)  # type: ignore[union-attr]
        if after_send is not None:
            after_send()


async def _then(iterator: AsyncIterator[bytes], after: Callable[[], None]) -> AsyncIterator[bytes]:
    """The chunks, then ``after`` (for Litestar's own response, which takes no callback)."""
    try:
        async for chunk in iterator:
            yield chunk
    finally:
        after()


class _RelayASGIResponse(ASGIStreamingResponse):
    """Litestar's streaming response (cookies, background tasks), written without a task group."""

    __slots__ = ()

    async def send_body(self, send: Any, receive: Any) -> None:
        await _send_body(self.iterator, send, receive)


class _PlainRelayResponse:
    """The ASGI app for a relay response with ready-encoded headers (the hot path)."""

    __slots__ = ("after_send", "headers", "iterator", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        iterator: AsyncIterator[bytes],
        after_send: Callable[[], None] | None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.iterator = iterator
        self.after_send = after_send

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        extension = server_extension(scope)
        iterator = self.iterator
        relayed = isinstance(iterator, RelayBody)
        writer: BodyWriter | None = None
        if relayed and extension:
            start = extension.get("start_chunked")
            if start is not None:
                writer = start(scope, send, self.status, self.headers)
        if writer is None:
            await send(
                {"type": "http.response.start", "status": self.status, "headers": self.headers}
            )
        on_lost = extension.get("on_lost") if extension else None
        if on_lost is not None and relayed:
            if writer is None:
                body_writer = extension.get("body_writer")
                writer = body_writer() if body_writer is not None else None
            if writer is not None:
                pump = iterator.pump(writer.write, writer.paused)
                if pump is not None:
                    await _pump_body(pump, writer, send, self.after_send, on_lost)
                    return
        watch = extension.get("client_watch") if extension else None
        await _send_body(iterator, send, receive, self.after_send, on_lost, watch)


class RelayStream(Stream):
    """``Stream`` for the relay's byte iterators, written without a task group.

    Given the ``exchange`` whose :meth:`~herd._engine.exchange.Exchange.stream` it writes,
    it finishes that exchange after the response's last write, not before it.
    """

    def __init__(
        self,
        content: AsyncIterator[bytes],
        media_type: str,
        headers: dict[str, str] | None = None,
        status_code: int | None = None,
        exchange: Exchange | None = None,
    ) -> None:
        # Response.__init__'s cookie and header normalising (ABC checks) for a plain dict
        self.content = b""
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.headers = dict(headers) if headers else {}
        self.media_type = media_type
        self.status_code = status_code
        self.response_type_encoders = dict(self.type_encoders or {})
        self.iterator = content
        self.after_send: Callable[[], None] | None = None
        if exchange is not None:
            exchange.finish_after_send = True
            self.after_send = exchange.sent

    def to_asgi_response(
        self,
        app: Any,
        request: Any,
        *,
        background: Any = None,
        cookies: Any = None,
        headers: dict[str, str] | None = None,
        media_type: Any = None,
        status_code: int | None = None,
        **kwargs: Any,
    ) -> Any:
        plain = (
            app is None
            and not (background or self.background or cookies or self.cookies)
            and not kwargs.get("encoded_headers")
            and not kwargs.get("is_head_response")
            # (a relay body first: the ABC's check is the slow one)
            and (type(self.iterator) is RelayBody or isinstance(self.iterator, AsyncIterator))
        )
        if plain:
            merged = {**headers, **self.headers} if headers else self.headers
            media = media_type or self.media_type or "application/json"
            if type(media) is not str:  # (an enum: Litestar's MediaType)
                media = get_enum_string_value(media)
            if media.startswith("text/"):
                media = f"{media}; charset={self.encoding}"
            latin = "latin-1"
            # (a newline in a name or value splits into more parts: the slow way, whose
            # checks refuse it)
            names = "\n".join(merged).lower().encode(latin).split(b"\n")
            values = "\n".join(merged.values()).encode(latin).split(b"\n")
            if len(names) == len(values) == len(merged):
                # (lengths checked: zip's strict= would build a keyword dict per call)
                encoded = list(zip(names, values))  # noqa: B905
            else:
                encoded = [(k.lower().encode(latin), v.encode(latin)) for k, v in merged.items()]
                names = [name for name, _ in encoded]
            if b"content-type" not in names:
                encoded.append((b"content-type", media.encode(latin)))
            status = self.status_code or status_code or 200
            return _PlainRelayResponse(status, encoded, self.iterator, self.after_send)
        if self.after_send is not None:
            self.iterator = _then(self.iterator, self.after_send)
        response = super().to_asgi_response(
            app,
            request,
            background=background,
            cookies=cookies,
            headers=headers,
            media_type=media_type,
            status_code=status_code,
            **kwargs,
        )
        # Same slots, other send_body: the only change from Litestar's streaming response.
        response.__class__ = _RelayASGIResponse
        return response
