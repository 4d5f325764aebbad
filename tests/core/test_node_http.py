"""herd.node_http against real servers on 127.0.0.1 that write edge cases byte by byte."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from pathlib import Path
from typing import Any

import herd
import httpx
import pytest
from herd.net import describe_network_error
from herd.node_http import (
    NodeConnectError,
    NodeDisconnected,
    NodeHttpClient,
    ReplyIncomplete,
)

from tests.core.raw_node import RawNode, RawRequest, Run, chunked, write_slowly

LINES = b'{"n":1}\n{"n":2}\r\n{"n":3}\n'


async def ok(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    return True


def test_chunked_with_extensions_and_trailers_split_everywhere(run: Run) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\ncOnTeNt-TyPe: application/x-ndjson\r\n"
        b"TRANSFER-ENCODING: chunked\r\n\r\n"
        + chunked(LINES[:5], LINES[5:17], LINES[17:], trailer=b"X-Done: yes\r\n")
    )

    async def slow(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        await write_slowly(writer, answer)
        return True

    async def scenario() -> tuple[int, str, bytes, bytes, int]:
        async with RawNode(slow) as node:
            client = NodeHttpClient(node.url)
            reply = await client.request("POST", "/api/chat", b"{}")
            body = await reply.read_all()
            again = await (await client.request("GET", "/again")).read_all()
            await client.close()
            return reply.status, reply.headers["content-type"], body, again, node.accepted

    status, ctype, body, again, accepted = run(scenario())
    assert (status, ctype) == (200, "application/x-ndjson")
    assert body == LINES and again == LINES
    assert accepted == 1  # the trailer did not stop the connection being reused


def test_content_length_close_delimited_http10_and_connection_close(run: Run) -> None:
    answers = {
        "/length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(LINES), LINES),
        "/eof": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + LINES,
        "/old": b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(LINES), LINES),
        "/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    }

    async def answer(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        path = request.request_line.split()[1]
        await write_slowly(writer, answers[path])
        return path == "/length"  # the others end with the connection

    async def scenario() -> list[tuple[str, bytes, int]]:
        seen = []
        async with RawNode(answer) as node:
            client = NodeHttpClient(node.url)
            for path in ["/length", "/length", "/eof", "/old", "/close", "/length"]:
                body = await (await client.request("GET", path)).read_all()
                seen.append((path, body, node.accepted))
            await client.close()
        return seen

    seen = run(scenario())
    assert [body for _, body, _ in seen] == [LINES, LINES, LINES, LINES, b"ok", LINES]
    # /length twice on connection 1; /eof, /old and /close each end theirs, so each of
    # them and the last request need a new one
    assert [count for _, _, count in seen] == [1, 1, 1, 2, 3, 4]


def test_an_informational_answer_before_the_real_one_is_skipped(run: Run) -> None:
    async def answer(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        return True

    async def scenario() -> tuple[int, bytes, dict[str, str]]:
        async with RawNode(answer) as node:
            client = NodeHttpClient(node.url)
            reply = await client.request("GET", "/")
            return reply.status, await reply.read_all(), reply.headers

    status, body, headers = run(scenario())
    assert (status, body) == (201, b"ok") and "link" not in headers


def test_the_request_is_one_well_formed_message(run: Run) -> None:
    port = 0

    async def scenario() -> list[RawRequest]:
        nonlocal port
        async with RawNode(ok) as node:
            port = int(node.url.rsplit(":", 1)[1])
            client = NodeHttpClient(node.url + "/prefix/")
            headers = {"Content-Type": "application/json", "traceparent": "00-ab-cd-01"}
            await (await client.request("POST", "/api/chat", b'{"a":1}', headers)).read_all()
            await (await client.request("GET", "/api/ps")).read_all()
            with pytest.raises(ValueError):
                await client.request("GET", "/", None, {"X": "a\r\nEvil: 1"})
            return node.requests

    post, get = run(scenario())
    assert post.request_line == "POST /prefix/api/chat HTTP/1.1"
    assert post.header("host") == "127.0.0.1:" + str(port)
    assert post.header("content-length") == "7" and post.body == b'{"a":1}'
    assert post.header("traceparent") == "00-ab-cd-01"
    assert post.header("user-agent") == get.header("user-agent") == f"herd/{herd.__version__}"
    assert get.request_line == "GET /prefix/api/ps HTTP/1.1"
    assert get.header("content-length") is None


def test_credentials_in_the_node_url_are_sent_as_basic_auth_not_in_host(run: Run) -> None:
    """A node behind a reverse proxy with basic auth: ``http://user:pass@host`` (what the
    router's aiohttp session also did for polls)."""

    async def scenario() -> list[RawRequest]:
        async with RawNode(ok) as node:
            url = node.url.replace("http://", "http://herd:p%40ss%3Aword@")
            client = NodeHttpClient(url)
            await (await client.request("GET", "/api/ps")).read_all()
            await (await NodeHttpClient(node.url).request("GET", "/api/ps")).read_all()
            return node.requests

    with_credentials, without = run(scenario())
    expected = "Basic " + base64.b64encode(b"herd:p@ss:word").decode()
    assert with_credentials.header("authorization") == expected
    assert "@" not in (with_credentials.header("host") or "")
    assert without.header("authorization") is None


def test_a_password_in_a_node_url_is_never_shown(make_router: Any) -> None:
    """Status, the dashboard and logs show the node's URL with its password masked."""
    url = "http://herd:s3cret-pass@127.0.0.1:9/"
    router = make_router(nodes=[{"name": "proxied", "url": url}])
    nodes = httpx.get(f"{router.url}/fleet/status", timeout=10).json()["nodes"]
    shown = next(n for n in nodes if n["name"] == "proxied")["url"]
    assert "s3cret-pass" not in shown and shown.startswith("http://herd:***@127.0.0.1:9")


def test_keep_alive_reuses_one_connection(run: Run) -> None:
    async def scenario() -> int:
        async with RawNode(ok) as node:
            client = NodeHttpClient(node.url)
            for _ in range(5):
                assert await (await client.request("GET", "/")).read_all() == b"ok"
            await client.close()
            return node.accepted

    assert run(scenario()) == 1


def test_an_idle_connection_the_node_closed_is_replaced(run: Run) -> None:
    async def close_after_answer(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return False  # the server hangs up once the client has its answer

    async def scenario() -> tuple[bytes, int]:
        async with RawNode(close_after_answer) as node:
            client = NodeHttpClient(node.url)
            await (await client.request("GET", "/")).read_all()
            await node.closed.wait()
            body = await (await client.request("GET", "/")).read_all()
            return body, node.accepted

    assert run(scenario()) == (b"ok", 2)


def test_a_node_closing_as_the_next_request_arrives_is_retried_once(run: Run) -> None:
    async def first_only(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if len([r for r in node_requests if r.connection == request.connection]) > 1:
            return False  # hang up without a byte of the answer, as an idle timeout would
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    node_requests: list[RawRequest] = []

    async def scenario() -> tuple[bytes, int]:
        async with RawNode(first_only) as node:
            node.requests = node_requests
            client = NodeHttpClient(node.url)
            await (await client.request("GET", "/")).read_all()
            body = await (await client.request("POST", "/", b"x")).read_all()
            return body, node.accepted

    assert run(scenario()) == (b"ok", 2)


def test_a_fresh_connection_closed_before_the_answer_is_not_retried(run: Run) -> None:
    async def hang_up(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        return False

    async def scenario() -> tuple[BaseException, int]:
        async with RawNode(hang_up) as node:
            client = NodeHttpClient(node.url)
            with pytest.raises(NodeDisconnected) as caught:
                await client.request("POST", "/api/chat", b"{}")
            return caught.value, node.accepted

    exc, accepted = run(scenario())
    assert describe_network_error(exc) == "the node closed the connection"
    assert accepted == 1


def test_a_node_dying_mid_reply_is_said_plainly(run: Run) -> None:
    async def die(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        return False

    async def scenario() -> tuple[bytes, BaseException]:
        async with RawNode(die) as node:
            reply = await NodeHttpClient(node.url).request("GET", "/")
            first = await reply.read()
            with pytest.raises(ReplyIncomplete) as caught:
                await reply.read()
            return first, caught.value

    first, exc = run(scenario())
    assert first == b"hello"
    assert describe_network_error(exc) == "the connection closed before the reply was complete"


def test_closing_a_reply_wakes_the_task_reading_it(run: Run) -> None:
    async def endless(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        return True  # and nothing more: the reader waits

    async def scenario() -> BaseException:
        async with RawNode(endless) as node:
            reply = await NodeHttpClient(node.url).request("GET", "/")
            assert await reply.read() == b"hi"
            reader = asyncio.create_task(reply.read())
            await asyncio.sleep(0)  # the reader is waiting now
            reply.close()  # as the zombie reaper does, from its own task
            with pytest.raises(ReplyIncomplete) as caught:
                await reader
            await node.closed.wait()  # and the node saw its connection close
            return caught.value

    assert isinstance(run(scenario()), ReplyIncomplete)


def test_a_silent_node_times_out(run: Run) -> None:
    async def headers_then_silence(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.request_line.startswith("GET /quiet"):
            return True  # says nothing at all
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        return True

    async def scenario() -> None:
        async with RawNode(headers_then_silence) as node:
            client = NodeHttpClient(node.url, read_timeout=0.3)
            reply = await client.request("GET", "/stream")
            assert await reply.read() == b"hi"
            with pytest.raises(TimeoutError):
                await reply.read()  # read_timeout: silence after the first chunk
            patient = NodeHttpClient(node.url, read_timeout=600)
            with pytest.raises(TimeoutError):
                await patient.request("GET", "/quiet", first_byte_timeout=0.3)

    run(scenario())


def test_a_refused_connection_names_the_address(run: Run) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def scenario() -> BaseException:
        with pytest.raises(NodeConnectError) as caught:
            await NodeHttpClient(f"http://127.0.0.1:{port}").request("GET", "/")
        return caught.value

    exc = run(scenario())
    assert describe_network_error(exc) == f"cannot connect to 127.0.0.1:{port}: Connection refused"


def test_https_refuses_an_untrusted_certificate_and_accepts_a_trusted_one(
    run: Run, self_signed: tuple[Path, Path]
) -> None:
    cert, key = self_signed
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def scenario() -> tuple[str, bytes, int]:
        async with RawNode(ok) as node:
            node._server.close()  # type: ignore[union-attr]  # the same node, over TLS
            node._server = await asyncio.start_server(node._serve, "127.0.0.1", 0, ssl=server_tls)
            url = node.url.replace("http://", "https://")
            with pytest.raises(NodeConnectError) as caught:
                await NodeHttpClient(url).request("GET", "/")
            trusting = ssl.create_default_context(cafile=str(cert))
            client = NodeHttpClient(url, ssl_context=trusting)
            first = await (await client.request("GET", "/")).read_all()
            second = await (await client.request("GET", "/")).read_all()
            await client.close()
            return describe_network_error(caught.value), first + second, node.accepted

    refused, bodies, accepted = run(scenario())
    assert "certificate verify failed" in refused and "self-signed" in refused
    assert refused.startswith("cannot connect to 127.0.0.1:")
    assert bodies == b"okok"
    assert accepted == 1  # the refused handshake never got as far: one kept-alive connection


def test_reply_headers_are_read_with_lower_case_names_and_latin_1_values(run: Run) -> None:
    answer_head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nX-Cafe: cr\xe8me\r\n"
        b"X-Empty:\r\nX-Twice: first\r\nx-twice: second\r\nContent-Length: 2\r\n\r\nok"
    )

    async def answer(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer_head)
        return True

    async def scenario() -> dict[str, str]:
        async with RawNode(answer) as node:
            client = NodeHttpClient(node.url)
            response = await client.request("GET", "/")
            await response.read_all()
            await client.close()
        return response.headers

    headers = run(scenario())
    assert headers == {
        "content-type": "application/x-ndjson",
        "x-cafe": "cr\xe8me",
        "x-empty": "",
        "x-twice": "second",  # (the last of a name written twice, in any case)
        "content-length": "2",
    }
