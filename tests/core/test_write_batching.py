"""Client writes: joined per loop turn (``herd._engine.write_batching``), a response's end
written at once, and a streamed request's bookkeeping done after its last write."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from herd._engine.app import create_app
from herd._engine.config import load_settings
from herd._engine.direct import DirectRoutes
from herd._engine.plugins import make_plugin_manager
from herd._engine.write_batching import BatchedWrites
from herd.hookspecs import hookimpl
from herd.testing import SimConfig, SimNode
from litestar.testing import TestClient

from tests.conftest import emulated

LLAMA = "llama3.2:3b"
HI = [{"role": "user", "content": "hi"}]


class _Counting:
    """The real transport, with its write calls counted (the joining is what is tested)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


@contextlib.asynccontextmanager
async def _connection() -> AsyncIterator[tuple[BatchedWrites, _Counting, asyncio.StreamReader]]:
    """A real loopback connection: the server side's transport, batched; the client's reader."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[asyncio.Transport] = loop.create_future()

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.set_result(transport)  # type: ignore[arg-type]

    server = await loop.create_server(Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    counting = _Counting(await made)
    try:
        yield BatchedWrites(counting, loop), counting, reader  # type: ignore[arg-type]
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_writes_in_one_turn_leave_as_one_and_later_turns_on_their_own() -> None:
    async def scenario() -> None:
        async with _connection() as (batched, counting, reader):
            batched.write(b"head ")
            batched.write(bytearray(b"first "))
            batched.writelines([b"second ", memoryview(b"third")])
            assert counting.writes == []  # nothing written within the turn
            await asyncio.sleep(0)
            assert counting.writes == [b"head first second third"]
            batched.write(b"!")
            await asyncio.sleep(0)
            assert counting.writes[1:] == [b"!"]
            assert await reader.readexactly(24) == b"head first second third!"

    asyncio.run(scenario())


def test_a_write_made_at_once_leaves_no_flush_behind_to_split_a_later_turn() -> None:
    """write_now takes what the turn gathered: the flush asked for it must not run first in
    the next turn and write alone what that turn's read gathers before its callbacks."""

    async def scenario() -> None:
        async with _connection() as (batched, counting, reader):
            batched.write(b"head ")
            batched.write_now(b"first ")
            assert counting.writes == [b"head first "]
            # a read in the next turn: it wakes the task that writes the end, then
            # gathers the stream's last lines
            asyncio.get_running_loop().call_soon(batched.write, b"end")
            batched.write(b"last ")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert counting.writes == [b"head first ", b"last end"]
            assert await reader.readexactly(19) == b"head first last end"

    asyncio.run(scenario())


def test_flush_writes_at_once_close_flushes_first_and_abort_drops() -> None:
    async def scenario() -> None:
        async with _connection() as (batched, counting, reader):
            batched.write(b"end of a response")
            batched.flush()
            assert counting.writes == [b"end of a response"]
            batched.flush()  # nothing gathered: no empty write
            await asyncio.sleep(0)  # the turn's own flush finds nothing either
            assert counting.writes == [b"end of a response"]
            batched.write(b" and a goodbye")
            batched.close()
            assert await reader.read() == b"end of a response and a goodbye"

        async with _connection() as (batched, counting, reader):
            batched.write(b"never sent")
            batched.abort()
            await asyncio.sleep(0)
            assert counting.writes == []
            assert await reader.read() == b""

    asyncio.run(scenario())


def test_a_connection_closed_before_the_turn_ends_gets_nothing_more() -> None:
    async def scenario() -> None:
        async with _connection() as (batched, counting, _reader):
            batched.write(b"late")
            counting.transport.close()  # the connection went (uvicorn closed it)
            await asyncio.sleep(0)
            assert counting.writes == []
            assert batched.is_closing()  # everything else is the real transport's

    asyncio.run(scenario())


class _Log:
    """One list for the client's writes and the router's bookkeeping, in the order they ran."""

    events: list[str] = []

    @hookimpl
    def herd_request_finished(self, trace: Any) -> None:
        _Log.events.append(f"finished {trace.status}")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimNode]:
    with SimNode(SimConfig(name="solo", port=0, models=[emulated(LLAMA)], reply_tokens=6)) as node:
        yield node


def _app(sim: SimNode) -> Any:
    overrides = {
        "data_dir": "",
        "fleet": {"discover_local": False},
        "nodes": [{"name": "solo", "url": sim.url}],
    }
    settings = load_settings(None, env={}, overrides=overrides)
    pm = make_plugin_manager(settings)
    pm.register(_Log(), name="test-order-log")
    return create_app(settings, pm=pm)


async def _request(
    app: Any,
    path: str,
    body: dict[str, Any],
    sent: Callable[[dict[str, Any]], Awaitable[None]],
    gone: asyncio.Event | None = None,
) -> None:
    """One request through the app as a server would make it: ``sent`` sees each body
    message; once ``gone`` is set, ``receive`` says the client left."""
    gone = gone or asyncio.Event()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 11435),
        "state": {},
    }
    messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            await sent(message)

    try:
        await app(scope, receive, send)
    finally:
        gone.set()


async def _call(app: Any, path: str, body: dict[str, Any]) -> bytes:
    """The answer's bytes, logging its last write."""
    body_out = []

    async def sent(message: dict[str, Any]) -> None:
        body_out.append(message.get("body", b""))
        if not message.get("more_body", False):
            _Log.events.append("last write")

    await _request(app, path, body, sent)
    return b"".join(body_out)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", {"model": LLAMA, "messages": HI}),
        ("/v1/chat/completions", {"model": LLAMA, "stream": True, "messages": HI}),
    ],
    ids=["ollama", "openai"],
)
def test_a_stream_is_finished_after_its_last_write_on_the_direct_path(
    sim: SimNode, path: str, body: dict[str, Any]
) -> None:
    app = _app(sim)
    assert isinstance(app.asgi_handler.app, DirectRoutes)
    with TestClient(app) as client:
        _Log.events.clear()
        answer = client.blocking_portal.call(_call, app, path, body)
    assert answer.count(b"\n") >= 6, answer
    assert _Log.events == ["last write", "finished completed"]


def test_litestars_path_finishes_the_stream_too(sim: SimNode) -> None:
    app = _app(sim)
    gate = app.asgi_handler
    gate.app = gate.app.app  # the direct routes' inner app: Litestar's own path
    body = {"model": LLAMA, "messages": HI}
    with TestClient(app) as client:
        _Log.events.clear()
        answer = client.blocking_portal.call(_call, app, "/api/chat", body)
    assert answer.count(b"\n") >= 6, answer
    assert sorted(_Log.events) == ["finished completed", "last write"]


def test_a_client_that_leaves_mid_stream_is_finished_once_as_disconnected(sim: SimNode) -> None:
    app = _app(sim)
    body = {"model": LLAMA, "messages": HI}

    async def leave_after_first_chunk() -> None:
        left = asyncio.Event()

        async def sent(message: dict[str, Any]) -> None:
            if message.get("body"):
                left.set()  # the client goes once the first chunk is out
                await asyncio.sleep(0.05)

        await _request(app, "/api/chat", body, sent, left)

    with TestClient(app) as client:
        _Log.events.clear()
        client.blocking_portal.call(leave_after_first_chunk)
    assert _Log.events == ["finished client_disconnected"]


def test_a_websocket_route_still_works_behind_herds_server_protocol() -> None:
    """A plugin's WebSocket gets the connection's own transport (its frames and half-close
    are written in its own order), and the plain requests before it still work."""
    import httpx
    from litestar import Litestar, get, websocket
    from litestar.connection import WebSocket
    from websockets.sync.client import connect

    @websocket("/echo")
    async def echo(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        while True:
            text = await socket.receive_text()
            if text == "bye":
                await socket.send_text("bye")
                await socket.close()
                return
            await socket.send_text(text.upper())

    @get("/plain")
    async def plain() -> str:
        return "plain"

    with _herd_server(Litestar([echo, plain])) as port:
        assert httpx.get(f"http://127.0.0.1:{port}/plain", timeout=10).text == "plain"
        with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10) as ws:
            ws.send("hello")
            ws.send("again")
            assert ws.recv(timeout=10) == "HELLO"
            assert ws.recv(timeout=10) == "AGAIN"
            ws.send("bye")
            assert ws.recv(timeout=10) == "bye"


@contextlib.contextmanager
def _herd_server(app: Any) -> Iterator[int]:
    """``app`` behind herd's server protocol on a free 127.0.0.1 port, until the block ends."""
    import socket
    import threading

    import uvicorn
    from herd._engine.server import server_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = load_settings(None, env={}, overrides={"data_dir": ""})
    server = uvicorn.Server(server_config(app, settings, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(3000):  # a busy 2-core host starts slowly
            if server.started:
                break
            threading.Event().wait(0.02)
        assert server.started
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_herds_server_calls_back_when_a_client_leaves_through_an_asgi_extension() -> None:
    """The extension's value is a dict, as ASGI has every extension's, holding the set of
    callbacks; a callback added to it runs when the client's connection is lost."""
    import socket
    import threading

    from herd._engine.streaming import DISCONNECT_CALLBACKS

    seen: list[Any] = []
    lost = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        extension = scope["extensions"][DISCONNECT_CALLBACKS]
        seen.append(extension)
        extension["on_lost"].add(lost.set)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await asyncio.sleep(60)  # the client leaves meanwhile

    with _herd_server(app) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: herd\r\n\r\n")
            assert b"first" in client.recv(4096) or b"first" in client.recv(4096)
        assert lost.wait(30)
    assert isinstance(seen[0], dict) and isinstance(seen[0]["on_lost"], set)


def test_a_relay_response_uses_the_extension_rather_than_waiting_on_receive() -> None:
    from herd._engine.streaming import DISCONNECT_CALLBACKS, RelayStream

    on_lost: set[Any] = set()
    registered: list[int] = []
    sent: list[dict[str, Any]] = []

    async def chunks() -> AsyncIterator[bytes]:
        registered.append(len(on_lost))  # (while the body is written)
        yield b"one\n"

    async def receive() -> dict[str, Any]:
        raise AssertionError("receive() awaited: the extension was not used")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "extensions": {DISCONNECT_CALLBACKS: {"on_lost": on_lost}}}
    response = RelayStream(chunks(), media_type="application/x-ndjson")
    asyncio.run(response.to_asgi_response(None, None)(scope, receive, send))  # type: ignore[arg-type]
    assert registered == [1] and not on_lost  # registered while writing, gone after
    assert [m.get("body") for m in sent[1:]] == [b"one\n", b""]


def test_a_relay_the_router_stops_past_its_grace_period_ends_with_an_error_frame() -> None:
    # (the path of a reply that cannot be watched: a task writes it chunk by chunk)
    from herd._engine.client_watch import ClientWatch
    from herd._engine.relay import RelayBody
    from herd._engine.streaming import DISCONNECT_CALLBACKS, RelayStream
    from herd.protocol.ollama import error_line

    sent: list[dict[str, Any]] = []

    async def node_lines() -> AsyncIterator[bytes]:
        yield b'{"done": false}\n'
        await asyncio.Event().wait()  # a node still generating

    body = RelayBody.__new__(RelayBody)
    body._iterator, body.started, body.error_frame = node_lines(), True, error_line

    async def receive() -> dict[str, Any]:
        raise AssertionError("receive() awaited")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        watch = ClientWatch()
        extension = {"on_lost": set(), "client_watch": watch}
        scope = {"type": "http", "extensions": {DISCONNECT_CALLBACKS: extension}}
        app = RelayStream(body, media_type="application/x-ndjson").to_asgi_response(None, None)
        task = asyncio.ensure_future(app(scope, receive, send))  # type: ignore[arg-type]
        while len(sent) < 2:
            await asyncio.sleep(0)
        watch.stopping = True  # the server's shutdown, then its cancel past the grace period
        task.cancel()
        await task  # ended, not cancelled

    asyncio.run(main())
    assert sent[-1] == {
        "type": "http.response.body",
        "body": b'{"error":"the router stopped before the answer ended"}\n',
        "more_body": False,
    }
