"""How herd runs under uvicorn: bounded request headers and a deadline to send them.

uvicorn reads request headers with no size limit and no time limit: a client could send
a gigabyte of header (parsing it costs more than linear time, and no route or key check
runs before it ends), or open connections and send nothing. :class:`BoundedHttpProtocol`
answers 431 once the request line and headers pass ``limits.max_header_bytes`` (having
parsed no more than that, so the cost is constant), and closes a connection whose headers
are not complete ``limits.header_timeout_s`` after it opened or its request began (408
when some had arrived). The body's own time bound is :mod:`herd._engine.guard`'s.

It also shortens a streamed request's way through uvicorn, each time only where the
outcome is the same:

- a ``POST`` to a direct route that the CORS gate and uvicorn's proxy-headers middleware
  would pass on unchanged goes straight to the direct routes
  (:class:`~herd._engine.direct.DirectLane`), its request cycle (uvicorn's own) started
  here;
- the scope extension (``streaming.DISCONNECT_CALLBACKS``) says when a body is already
  here (``body_ready``), and writes a chunked reply's head, body and end past ``send``
  (``start_chunked``, ``body_writer``), the bytes and the request cycle's state being
  those ``send`` would give.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from herd._engine.chunked_reply import ChunkWriter, chunked_head
from herd._engine.client_watch import ClientWatch
from herd._engine.close_delimited import close_delimited_cycle
from herd._engine.streaming import DISCONNECT_CALLBACKS
from herd._engine.write_batching import BatchedWrites
from herd.settings import Settings

__all__ = ["server_config"]

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
except ImportError:  # pragma: no cover - httptools is a dependency; h11 is the fallback
    HttpToolsProtocol = RequestResponseCycle = None  # type: ignore[assignment,misc]

# A lane request's cycle is started here (see BoundedHttpProtocol._start_lane), so the lane
# is open only with the uvicorn whose cycle takes these arguments in this order and that
# starts a cycle's task with _start_asgi_task; with any other, every request goes the
# whole way, through uvicorn's own on_headers_complete.
_CYCLE_ARGUMENTS = (
    "scope",
    "transport",
    "flow",
    "logger",
    "access_logger",
    "access_log",
    "default_headers",
    "message_event",
    "expect_100_continue",
    "keep_alive",
    "on_response",
)
_STARTS_LANE = (
    RequestResponseCycle is not None
    and tuple(inspect.signature(RequestResponseCycle).parameters) == _CYCLE_ARGUMENTS
    and hasattr(HttpToolsProtocol, "_start_asgi_task")
)


def _refusal(status: int, reason: bytes, message: bytes) -> bytes:
    body = b'{"error":"' + message + b'"}'
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


# a request with none of these headers passes the CORS gate and uvicorn's proxy-headers
# middleware unchanged: it may take the direct lane (see direct.DirectLane)
_LANE_CLEAR = frozenset((b"origin", b"x-forwarded-for", b"x-forwarded-proto")).isdisjoint
_first = itemgetter(0)


if HttpToolsProtocol is not None:

    class BoundedHttpProtocol(HttpToolsProtocol):  # type: ignore[misc,valid-type]
        """uvicorn's httptools protocol with a size and a time bound on request headers."""

        max_header_bytes = 64 * 1024
        header_timeout_s = 30.0
        #: the app served and its direct lane (``direct.DirectLane``), set by server_config
        served_app: Any = None
        direct_lane: Any = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # the lane is taken only when uvicorn serves the app as given (behind nothing
            # but its proxy-headers middleware, which a lane request would pass unchanged),
            # with no concurrency limit, and herd can start the cycle (see _STARTS_LANE)
            served = self.app
            if isinstance(served, ProxyHeadersMiddleware):
                served = served.app
            lane_open = _STARTS_LANE and self.limit_concurrency is None
            self._lane = self.direct_lane if lane_open and served is self.served_app else None
            self._in_headers = True
            self._header_bytes = 0
            self._header_timer: asyncio.TimerHandle | None = None
            self._on_lost: set[Callable[[], None]] = set()
            self._client_watch = ClientWatch()
            # its extension (one per connection): see streaming.DISCONNECT_CALLBACKS
            self._disconnect = {
                "on_lost": self._on_lost,
                "client_watch": self._client_watch,
                "body_writer": self._body_writer,
                "body_ready": self._body_ready,
                "take_body": self._take_body,
                "start_chunked": self._start_chunked,
            }

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(BatchedWrites(transport, self.loop))  # type: ignore[arg-type]
            self._start_header_clock()

        def shutdown(self) -> None:
            # the server stops: a request cancelled past the grace period is told so
            self._client_watch.stopping = True
            super().shutdown()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_clock()
            super().connection_lost(exc)
            self._client_watch.lost()
            for callback in tuple(self._on_lost):
                callback()

        def data_received(self, data: bytes) -> None:
            if self._in_headers:
                room = self.max_header_bytes - self._header_bytes
                if len(data) > room:
                    if room > 0:
                        self._header_bytes += room
                        super().data_received(data[:room])  # may complete the headers
                    if self.transport.is_closing():
                        return
                    if self._in_headers:
                        self._refuse(
                            431,
                            b"Request Header Fields Too Large",
                            b"request headers larger than %d bytes" % self.max_header_bytes,
                        )
                        return
                    data = data[room:]
                else:
                    self._header_bytes += len(data)
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            # the app's way to hear of a client leaving without a task waiting on receive()
            self.scope["extensions"] = {DISCONNECT_CALLBACKS: self._disconnect}  # type: ignore[typeddict-unknown-key]
            if not self._in_headers:  # the next request on a kept-alive connection
                self._in_headers = True
                self._header_bytes = 0
                self._start_header_clock()

        def handle_websocket_upgrade(self) -> None:
            # a WebSocket (a plugin's route) gets the connection's own transport: its
            # protocol writes frames and half-closes with write_eof, in its own order
            batched = self.transport
            if isinstance(batched, BatchedWrites):
                batched.flush()
                self.transport = batched.transport
            super().handle_websocket_upgrade()

        def on_response_complete(self) -> None:
            self.transport.flush()  # a response's end goes out now, before any bookkeeping
            super().on_response_complete()

        def on_header(self, name: bytes, value: bytes) -> None:
            # uvicorn's (a lower-case name, a value without trailing blanks), with its
            # rare case, Expect, looked for once the headers are complete: a request has
            # several headers, and this runs for each
            self.headers.append((name.lower(), value.rstrip(b" \t")))

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._stop_header_clock()
            headers = self.headers
            names = list(map(_first, headers))
            if b"expect" in names:
                for name, value in headers:
                    if name == b"expect" and value.lower() == b"100-continue":
                        self.expect_100_continue = True
            lane = self._lane
            if (
                lane is not None
                and self.url in lane.urls
                and _LANE_CLEAR(names)
                and self.parser.get_method() == b"POST"
                and not self.parser.should_upgrade()
            ):
                self._start_lane(lane)
            else:
                super().on_headers_complete()
                cycle, scope = self.cycle, self.scope
                if cycle is not None and cycle.scope is scope and scope["http_version"] == "1.0":
                    close_delimited_cycle(cycle)  # (its streamed reply: not chunked)

        def _start_lane(self, lane: Any) -> None:
            """Start a lane request's cycle: what uvicorn's ``on_headers_complete`` does for
            a ``POST`` with no upgrade and no concurrency limit, to a target with no query
            and no escapes (the lane's own paths, exactly), its cycle built with positional
            arguments (with keywords, a dict is packed and unpacked per request)."""
            parser, scope, url = self.parser, self.scope, self.url
            version = parser.get_http_version()
            scope["method"] = "POST"
            if version != "1.1":
                scope["http_version"] = version
            scope["path"] = self.root_path + url.decode("ascii")
            scope["raw_path"] = self.root_path.encode("ascii") + url
            scope["query_string"] = b""
            existing = self.cycle
            cycle = self.cycle = RequestResponseCycle(
                scope,
                self.transport,
                self.flow,
                self.logger,
                self.access_logger,
                self.access_log,
                self.server_state.default_headers,
                asyncio.Event(),
                self.expect_100_continue,
                version != "1.0" and parser.should_keep_alive(),
                self.on_response_complete,
            )
            if version == "1.0":
                close_delimited_cycle(cycle)
            if existing is None or existing.response_complete:
                self._start_asgi_task(cycle, lane)
            else:  # pipelined: it waits its turn, reading paused meanwhile
                self.flow.pause_reading()
                self.pipeline.appendleft((cycle, lane))

        def _body_ready(self) -> bool:
            """The request's next ``receive()`` returns at once: body bytes or its end are
            here (a pipelined request's cycle is the next one, whose headers came after
            this one's whole body)."""
            cycle = self.cycle
            return cycle is not None and cycle.message_event.is_set()

        def _take_body(self, scope: Any) -> bytes | None:
            """The whole body of the request of ``scope`` when all of it is here: the
            bytes its cycle's ``receive()`` would return, with the same effects on the
            cycle (its buffer emptied, its event cleared, reading resumed). None, having
            taken nothing, when some is still to come, a ``100 Continue`` is owed, the
            cycle is over, or ``scope`` is not the current cycle's (a pipelined request
            came after it)."""
            cycle = self.cycle
            if (
                cycle is None
                or cycle.scope is not scope
                or cycle.more_body
                or cycle.waiting_for_100_continue
                or cycle.disconnected
                or cycle.response_complete
                or not cycle.message_event.is_set()
            ):
                return None
            body = bytes(cycle.body)
            cycle.body = bytearray()
            cycle.message_event.clear()
            self.flow.resume_reading()
            return body

        def _start_chunked(
            self, scope: Any, send: Any, status: int, headers: Sequence[tuple[bytes, bytes]]
        ) -> ChunkWriter | None:
            """Write a chunked response's head for the request of ``scope`` (what its
            ``http.response.start`` through ``send`` would write, with uvicorn's default
            headers) and give its body writer.

            None, having written nothing, when ``send`` is not the cycle's own (a
            middleware wraps it), when the response is no plain chunked one (HEAD,
            1xx/204/304, an access log line for uvicorn to write) or when the headers are
            any but herd writes itself: the caller then sends the start through ``send``.
            """
            cycle = self.cycle
            transport = self.transport
            if (
                cycle is None
                or cycle.scope is not scope
                or cycle.__class__ is not RequestResponseCycle  # (HTTP/1.0: not chunked)
                or getattr(send, "__self__", None) is not cycle
                or cycle.response_started
                or cycle.disconnected
                or (cycle.access_log and cycle.access_logger.isEnabledFor(logging.INFO))
                or status < 200
                or status in (204, 304)
                or scope["method"] == "HEAD"
                or self.flow.write_paused
                or not isinstance(transport, BatchedWrites)
            ):
                return None
            head = chunked_head(status, [*cycle.default_headers, *headers], not cycle.keep_alive)
            if head is None:
                return None
            cycle.response_started = True
            cycle.waiting_for_100_continue = False
            cycle.chunked_encoding = True
            cycle.expected_content_length = 0
            transport.write(head)
            return ChunkWriter(cycle, transport, self.flow)

        def _body_writer(self) -> ChunkWriter | None:
            """The response's body writer, once its headers went out chunked (else None)."""
            cycle = self.cycle
            transport = self.transport
            if (
                cycle is None
                or not cycle.response_started
                or cycle.response_complete
                or cycle.disconnected
                or not cycle.chunked_encoding
                or not isinstance(transport, BatchedWrites)
            ):
                return None
            return ChunkWriter(cycle, transport, self.flow)

        def _start_header_clock(self) -> None:
            self._stop_header_clock()
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

        def _stop_header_clock(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if not self._in_headers or self.transport.is_closing():
                return
            if self._header_bytes:
                self._refuse(408, b"Request Timeout", b"request headers not complete in time")
            else:
                self.transport.close()

        def _refuse(self, status: int, reason: bytes, message: bytes) -> None:
            self._stop_header_clock()
            self.transport.write(_refusal(status, reason, message))
            self.transport.close()


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration that bounds request headers by ``settings.limits``.

    Args:
        app: The ASGI app.
        settings: Its settings (``limits.max_header_bytes``, ``limits.header_timeout_s``).
        options: Any other ``uvicorn.Config`` option (host, port, log_level, ...).
    """
    limits = settings.limits
    if HttpToolsProtocol is not None:
        state = getattr(app, "state", None)
        protocol = type(
            "HerdHttpProtocol",
            (BoundedHttpProtocol,),
            {
                "max_header_bytes": limits.max_header_bytes,
                "header_timeout_s": limits.header_timeout_s,
                "served_app": app,
                "direct_lane": getattr(state, "direct_lane", None),
            },
        )
        options["http"] = protocol
    options.setdefault("h11_max_incomplete_event_size", limits.max_header_bytes)
    # Clients reuse an idle connection for up to 15 s (aiohttp), 90 s (Go) or without a
    # limit (urllib3); closing one first races their next request, which then fails with
    # "server disconnected" (uvicorn's 5 s did, under think time between turns)
    options.setdefault("timeout_keep_alive", limits.keep_alive_s)
    return uvicorn.Config(app, **options)
