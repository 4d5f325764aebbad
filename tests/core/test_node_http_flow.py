"""herd.node_http's flow control against a real server on 127.0.0.1: a reply nobody takes
stops the connection reading past the buffer limit, and taking it starts it again."""

from __future__ import annotations

import asyncio
import hashlib

from herd.node_http import READ_BUFFER_LIMIT, NodeHttpClient

from tests.core.raw_node import RawNode, RawRequest, Run


def test_a_large_body_is_read_under_flow_control(run: Run) -> None:
    body = bytes(range(256)) * (16 * 4096)  # 16 MiB

    async def big(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        return True

    async def scenario() -> tuple[int, str, int]:
        async with RawNode(big) as node:
            client = NodeHttpClient(node.url)
            reply = await client.request("GET", "/")
            conn = reply._conn
            assert conn is not None
            for _ in range(1000):  # the reader does not read: the connection must pause
                if not conn.transport.is_reading():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            held = reply._buffered
            digest = hashlib.sha256(await reply.read_all()).hexdigest()
            again = await (await client.request("GET", "/")).read_all()
            assert again == body
            return held, digest, node.accepted

    held, digest, accepted = run(scenario())
    assert READ_BUFFER_LIMIT < held < READ_BUFFER_LIMIT + (1 << 20)
    assert digest == hashlib.sha256(body).hexdigest()
    assert accepted == 1


def test_a_listener_that_stops_taking_pauses_the_connection_and_taking_resumes_it(
    run: Run,
) -> None:
    """A relay takes a reply from its listener; when its client is slow it stops listening,
    the reply then pauses the connection past the buffer limit, and the next take resumes it."""
    body = bytes(range(256)) * (16 * 4096)  # 16 MiB

    async def big(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        return True

    async def scenario() -> tuple[int, bytes]:
        async with RawNode(big) as node:
            reply = await NodeHttpClient(node.url).request("GET", "/")
            conn = reply._conn
            assert conn is not None
            taken = [reply.take()]
            listened = asyncio.Event()

            def listener() -> None:  # takes what comes, as a relay's pump does
                taken.append(reply.take())
                listened.set()

            reply.listener = listener
            await asyncio.wait_for(listened.wait(), 30)
            reply.listener = None  # the client is slow: the relay stops taking
            for _ in range(1000):
                if not conn.transport.is_reading():
                    break
                await asyncio.sleep(0.01)
            held = reply._buffered
            return held, b"".join(taken) + await asyncio.wait_for(reply.read_all(), 60)

    held, received = run(scenario())
    assert held > READ_BUFFER_LIMIT  # it paused
    assert received == body  # and the take after it resumed reading
