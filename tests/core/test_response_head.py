"""A streamed reply's head, written by herd's server (``server.py``, ``start_chunked``)
instead of uvicorn's ``send``: byte for byte the head uvicorn writes, on a real router, for
kept-alive, closing, HTTP/1.0 and pipelined requests; and left to uvicorn whenever it is
anything else."""

from __future__ import annotations

import json
import socket

import httptools
import pytest
from herd._engine.chunked_reply import chunked_head

from tests.core.processes import send_until_closed

LLAMA = "llama3.2:3b"
CHAT = json.dumps({"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture
def router(make_sim, make_router):
    return make_router(nodes=[make_sim(name="a", reply_tokens=5)])


def _request(extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    return (
        b"POST /api/chat HTTP/%b\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%b\r\n%b" % (version, len(CHAT), extra, CHAT)
    )


class _Replies:
    """Parses the responses on one connection as they come (llhttp, as a client would)."""

    def __init__(self) -> None:
        self.done: list[dict] = []
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append(
            {
                "status": self._parser.get_status_code(),
                "headers": self._headers,
                "lines": [json.loads(line) for line in self._body.splitlines()],
            }
        )
        self._headers, self._body = [], b""

    def read(self, sock: socket.socket, count: int) -> bool:
        """Until ``count`` responses are complete; True when the server then closed."""
        while len(self.done) < count:
            data = sock.recv(65536)
            assert data, f"closed after {len(self.done)} of {count} responses"
            self._parser.feed_data(data)
        sock.settimeout(0.5)  # (a close comes at once; a kept connection says nothing)
        try:
            return sock.recv(1) == b""
        except TimeoutError:
            return False
        finally:
            sock.settimeout(30)


def _exchange(router, payload: bytes, count: int = 1) -> tuple[list[dict], bool]:
    sock = socket.create_connection(("127.0.0.1", router.port), timeout=30)
    try:
        sock.sendall(payload)
        replies = _Replies()
        closed = replies.read(sock, count)
        return replies.done, closed
    finally:
        sock.close()


def _names(reply: dict) -> list[bytes]:
    return [name for name, _ in reply["headers"]]


def _complete(reply: dict) -> None:
    assert reply["status"] == 200
    assert reply["lines"][-1]["done"] is True
    assert len(reply["lines"]) == 6  # five tokens and the last line


def test_a_kept_alive_stream_is_chunked_and_the_connection_stays_open(router) -> None:
    (reply,), closed = _exchange(router, _request())
    _complete(reply)
    assert dict(reply["headers"])[b"transfer-encoding"] == b"chunked"
    assert b"connection" not in _names(reply)
    assert not closed


def test_streams_one_after_another_on_one_connection_each_complete_the_cycle(router) -> None:
    state = router._server.server_state  # uvicorn counts a request once its cycle completes
    before = state.total_requests
    sock = socket.create_connection(("127.0.0.1", router.port), timeout=30)
    try:
        replies = _Replies()
        for count in (1, 2, 3):
            sock.sendall(_request())
            assert not replies.read(sock, count)
    finally:
        sock.close()
    for reply in replies.done:
        _complete(reply)
    assert state.total_requests - before == 3


def test_a_closing_request_gets_connection_close_and_the_close(router) -> None:
    (reply,), closed = _exchange(router, _request(b"Connection: close\r\n"))
    _complete(reply)
    assert dict(reply["headers"])[b"connection"] == b"close"
    assert closed


def _read_to_close(router, payload: bytes) -> tuple[bytes, list[bytes], bytes]:
    """The status line, header lines and body of the one reply on a connection the
    server closes (an HTTP/1.0 reply of no length ends with the close)."""
    head, _, body = send_until_closed(router.port, payload).partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    return status, [line.lower() for line in lines], body


@pytest.mark.parametrize(
    "extra",
    [b"", b"X-Forwarded-For: 10.0.0.9\r\n"],
    ids=["direct lane", "through uvicorn's own cycle start"],
)
def test_an_http_1_0_stream_is_not_chunked_and_ends_with_the_close(router, extra: bytes) -> None:
    # HTTP/1.0 has no chunked coding (RFC 9112, 6.1): an HTTP/1.0 client would read the
    # chunk sizes as part of the body; a reply of no length ends with the close (6.3)
    status, headers, body = _read_to_close(router, _request(extra, b"1.0"))
    assert status.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in headers
    assert not [h for h in headers if h.startswith((b"transfer-encoding", b"content-length"))]
    lines = [json.loads(line) for line in body.splitlines()]  # every line is JSON: no sizes
    assert len(lines) == 6 and lines[-1]["done"] is True


def test_an_http_1_0_event_stream_says_close_once(router) -> None:
    # the dashboard's events (Litestar's SSE reply names Connection: keep-alive itself)
    with socket.create_connection(("127.0.0.1", router.port), timeout=30) as sock:
        sock.sendall(b"GET /dashboard/events HTTP/1.0\r\n\r\n")
        data = b""
        while b"event: fleet" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = [line.lower() for line in head.split(b"\r\n")[1:]]
    assert [h for h in headers if h.startswith(b"connection")] == [b"connection: close"]
    assert not [h for h in headers if h.startswith(b"transfer-encoding")]
    assert body.startswith(b"retry: 1000")  # the first event, with no chunk size before it


def test_an_http_1_0_reply_of_known_length_keeps_it(router) -> None:
    whole = json.dumps(
        {"model": LLAMA, "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    )
    payload = b"POST /api/chat HTTP/1.0\r\nContent-Length: %d\r\n\r\n%b" % (
        len(whole),
        whole.encode(),
    )
    status, headers, body = _read_to_close(router, payload)
    assert status.startswith(b"HTTP/1.1 200")
    assert f"content-length: {len(body)}".encode() in headers
    assert json.loads(body)["done"] is True
    status, headers, body = _read_to_close(router, b"GET /api/tags HTTP/1.0\r\n\r\n")
    assert f"content-length: {len(body)}".encode() in headers
    assert LLAMA in [m["name"] for m in json.loads(body)["models"]]


def test_pipelined_streams_are_each_answered_in_order(router) -> None:
    replies, closed = _exchange(router, _request() * 3, count=3)
    for reply in replies:
        _complete(reply)
    assert not closed


def test_pipelined_requests_are_each_answered_from_their_own_body(router) -> None:
    # all three bodies are here before the first is read: each request's body is its own
    # cycle's, not the latest one the connection parsed
    def request(body: dict) -> bytes:
        data = json.dumps(body).encode()
        return b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (
            len(data),
            data,
        )

    messages = [{"role": "user", "content": "hi"}]
    payload = (
        request({"model": LLAMA, "messages": messages, "stream": False})
        + request({"model": LLAMA, "messages": messages})
        + request({"model": "nope:1b", "messages": messages})
    )
    (whole, streamed, unknown), closed = _exchange(router, payload, count=3)
    assert whole["status"] == 200 and len(whole["lines"]) == 1
    assert whole["lines"][0]["done"] is True
    _complete(streamed)
    assert unknown["status"] == 404
    assert not closed


def test_the_head_is_the_one_uvicorn_writes(router) -> None:
    # a cross-origin request's send is wrapped (CORS headers): uvicorn writes its head
    (own,), _ = _exchange(router, _request())
    (theirs,), _ = _exchange(router, _request(b"Origin: http://localhost:3000\r\n"))
    cors = {b"access-control-allow-origin", b"access-control-expose-headers", b"vary"}
    assert [n for n in _names(theirs) if n not in cors] == _names(own)
    varying = {b"date", b"x-herd-score"}
    assert [h for h in theirs["headers"] if h[0] not in cors | varying] == [
        h for h in own["headers"] if h[0] not in varying
    ]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"5")],
        [(b"connection", b"keep-alive")],
        [(b"transfer-encoding", b"gzip")],
        [(b"X-Upper", b"a")],
        [(b"bad name", b"a")],
        [(b"x-split", b"a\r\nx-injected: 1")],
        [(b"x-nul", b"a\x00")],
    ],
)
def test_a_head_herd_does_not_write_itself_is_left_to_uvicorn(headers) -> None:
    assert chunked_head(200, headers, False) is None


def test_a_head_herd_writes() -> None:
    head = chunked_head(200, [(b"x-a", b"1\t2"), (b"content-type", b"text/plain")], True)
    assert head == (
        b"HTTP/1.1 200 OK\r\nx-a: 1\t2\r\ncontent-type: text/plain\r\n"
        b"connection: close\r\ntransfer-encoding: chunked\r\n\r\n"
    )


def test_every_byte_is_judged_as_rfc_9110_judges_it() -> None:
    # a name is a token in lower case; a value has no control byte but tab
    token = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
    for byte in range(256):
        name, value = b"x-a" + bytes([byte]), b"a" + bytes([byte]) + b"b"
        assert (chunked_head(200, [(name, b"v")], False) is None) == (byte not in token), byte
        control = (byte < 0x20 and byte != 9) or byte == 0x7F
        assert (chunked_head(200, [(b"x-a", value)], False) is None) == control, byte
