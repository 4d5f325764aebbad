"""The floor for the router's CPU: a bare streaming relay on the router's own stack.

    python benchmarks/floor_proxy.py NODE_HOST NODE_PORT PORT

uvloop and httptools, as herd runs on, and nothing else: each client connection gets one
kept-alive connection to the node; a request goes to the node as it came (method, path,
body), and the node's reply comes back chunked, each piece of it written as it is read.
No routing, no JSON, no trace, no metrics, no checks. What this costs per streamed chat is
what any Python router on this stack and this machine pays before doing any work of its
own; ``bench_gateway.py`` measures it beside the routers, in the same rounds.

It serves 127.0.0.1 only, and stops when its parent kills it.
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop


class _Node(asyncio.Protocol):
    """The node side of one client connection: its replies, relayed chunked."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.client.write(
            b"HTTP/1.1 %d -\r\ncontent-type: application/x-ndjson\r\n"
            b"transfer-encoding: chunked\r\n\r\n" % status
        )

    def on_body(self, body: bytes) -> None:
        self.client.write(b"%x\r\n%b\r\n" % (len(body), body))

    def on_message_complete(self) -> None:
        self.client.write(b"0\r\n\r\n")


class _Client(asyncio.Protocol):
    """One client connection: each request's method, path and body go to the node."""

    def __init__(self, node: tuple[str, int]) -> None:
        self.node_address = node
        self.parser = httptools.HttpRequestParser(self)
        self.node: _Node | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.write = transport.write  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.node is not None and self.node.transport is not None:
            self.node.transport.close()

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        message = b"%b %b HTTP/1.1\r\nHost: node\r\nContent-Length: %d\r\n\r\n%b" % (
            self.parser.get_method(),
            self.url,
            len(body),
            body,
        )
        node = self.node
        if node is not None and node.transport is not None and not node.transport.is_closing():
            node.transport.write(message)
        else:
            asyncio.get_running_loop().create_task(self._connect(message))

    async def _connect(self, message: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, self.node = await loop.create_connection(lambda: _Node(self), *self.node_address)
        self.node.transport.write(message)  # type: ignore[union-attr]


async def _serve(node: tuple[str, int], port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(node), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    host, node_port, own_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    uvloop.run(_serve((host, node_port), own_port))
