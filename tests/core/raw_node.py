"""A raw HTTP/1.1 server on 127.0.0.1 whose answers a test writes byte by byte.

Each accepted connection reads requests (head and Content-Length body) and hands each to
``answer(request, writer)``, which writes whatever the test wants, well-formed or not, and
returns whether to keep reading requests on that connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawRequest:
    head: bytes
    body: bytes
    connection: int  # which accepted connection (1, 2, ...) it came on

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode()

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


Answer = Callable[[RawRequest, asyncio.StreamWriter], Awaitable[bool]]
#: A test's ``run`` fixture (tests/core/conftest.py): a scenario run to its end on a loop.
Run = Callable[[Coroutine[Any, Any, Any]], Any]


@dataclass
class RawNode:
    answer: Answer
    accepted: int = 0
    requests: list[RawRequest] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # a connection ended
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> RawNode:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        number = self.accepted
        self.writers.append(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                request = RawRequest(head, b"", number)
                length = request.header("content-length")
                if length:
                    request.body = await reader.readexactly(int(length))
                self.requests.append(request)
                if not await self.answer(request, writer):
                    break
        finally:
            writer.close()
            self.closed.set()


async def write_slowly(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Every byte in a send of its own, so the client sees every possible split."""
    for index in range(len(data)):
        writer.write(data[index : index + 1])
        await writer.drain()
        await asyncio.sleep(0)


def chunked(*parts: bytes, trailer: bytes = b"") -> bytes:
    """A chunked body whose chunks carry extensions, ending with ``trailer`` fields."""
    out = b"".join(b'%x;ext=1;q="a b"\r\n%s\r\n' % (len(part), part) for part in parts)
    return out + b"0\r\n" + trailer + b"\r\n"
