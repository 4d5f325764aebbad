"""Why an exchange with a node failed, in words an operator can act on (herd.net)."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from herd.net import describe_network_error


async def _failure(url: str, read: bool = True) -> BaseException:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(url) as reply:
                if read:
                    await reply.read()
        except aiohttp.ClientError as exc:
            return exc
    raise AssertionError("the request did not fail")


async def _serve_once(answer: bytes) -> tuple[asyncio.Server, int]:
    """A server on 127.0.0.1 that reads a request, writes ``answer`` and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_refused_connection_names_the_address_and_the_reason() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exc = asyncio.run(_failure(f"http://127.0.0.1:{port}/api/ps"))
    assert describe_network_error(exc) == f"cannot connect to 127.0.0.1:{port}: Connection refused"


def test_a_node_that_dies_mid_reply_or_before_it_is_said_plainly() -> None:
    async def scenario() -> tuple[str, str]:
        chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        server, port = await _serve_once(chunked)  # then gone before the last chunk
        async with server:
            cut = await _failure(f"http://127.0.0.1:{port}/")
        server, port = await _serve_once(b"")  # gone before any byte of the reply
        async with server:
            hung_up = await _failure(f"http://127.0.0.1:{port}/")
        return describe_network_error(cut), describe_network_error(hung_up)

    cut, hung_up = asyncio.run(scenario())
    # not aiohttp's "<TransferEncodingError: 400, message='Not enough data ...'>"
    assert cut == "the connection closed before the reply was complete"
    assert hung_up == "the node closed the connection"


def test_timeouts_and_anything_else() -> None:
    assert describe_network_error(TimeoutError()) == "timed out"
    assert describe_network_error(ConnectionResetError()) == "ConnectionResetError"
    assert describe_network_error(OSError("no\nroute")) == "no route"


def test_running_out_of_descriptors_is_told_apart_from_a_node_failure() -> None:
    import errno

    from herd.net import out_of_local_resources
    from herd.node_http import NodeConnectError
    from herd.replies import NodeFailure

    def chained(cause: OSError) -> NodeFailure:
        try:
            try:
                raise NodeConnectError("10.0.0.5", 11434, "Too many open files") from cause
            except NodeConnectError as exc:
                raise NodeFailure("node a unreachable") from exc
        except NodeFailure as failure:
            return failure

    assert out_of_local_resources(chained(OSError(errno.EMFILE, "Too many open files")))
    assert out_of_local_resources(chained(OSError(errno.ENFILE, "File table overflow")))
    assert not out_of_local_resources(chained(OSError(errno.ECONNREFUSED, "refused")))
    assert not out_of_local_resources(NodeFailure("node a answered 500"))


@pytest.mark.parametrize(
    ("url", "proxied"),
    [
        ("http://127.0.0.1:11435", False),
        ("http://localhost:11434", False),
        ("http://[::1]:11435", False),
        ("https://router.localhost", False),
        ("http://10.0.0.2:11435", True),
        ("https://gpu.example.com/ollama", True),
    ],
)
def test_only_other_machines_go_through_the_environments_proxy(url: str, proxied: bool) -> None:
    from herd.net import takes_proxy_from_environment

    assert takes_proxy_from_environment(url) is proxied
