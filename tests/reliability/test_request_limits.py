"""What a hostile or broken client can send, against a real uvicorn server on 127.0.0.1:
oversized and slow headers, bodies that never finish, deep JSON, huge numbers, long names,
bad multipart text and NUL bytes in paths. Each gets a clear 4xx, fast, and the router
stays healthy."""

from __future__ import annotations

import logging
import socket
import time

import httpx
import pytest

LLAMA = "llama3.2:3b"
CHAT = {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}], "stream": False}
FAST = {"limits": {"header_timeout_s": 1.0, "body_timeout_s": 1.0}}
# every JSON POST endpoint a client may call (admin ones need no key from loopback)
JSON_POSTS = [
    "/api/chat",
    "/api/generate",
    "/api/embed",
    "/api/embeddings",
    "/api/show",
    "/api/pull",
    "/api/copy",
    "/api/generate-image",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/images/generations",
    "/dashboard/api/settings",
    "/dashboard/api/benchmarks",
    "/fleet/heartbeat",
]


@pytest.fixture
def router(make_sim, make_router):
    sim = make_sim(name="a")
    return make_router(
        nodes=[sim], workloads={"transcription": True, "image_generation": True}, **FAST
    )


def _connect(router) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", router.port), timeout=15)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 15 s pass)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError("the server kept the connection open") from None
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _healthy(router) -> None:
    assert httpx.get(router.url + "/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("size", [70 * 1024, 8 * 1024 * 1024])
def test_headers_over_64_kb_get_431_and_the_connection_closes(router, size: int) -> None:
    sock = _connect(router)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
    try:
        sock.sendall(head)
        sent = 0
        block = b"a" * 65536
        while sent < size:  # the server may close before it has all of it: that is the point
            sock.sendall(block)
            sent += len(block)
        sock.sendall(b"\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = _read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    _healthy(router)


def test_headers_just_under_the_limit_are_fine(router) -> None:
    reply = httpx.get(router.url + "/healthz", headers={"X-Big": "a" * 60_000})
    assert reply.status_code == 200


def test_a_connection_that_sends_nothing_is_closed(router) -> None:
    sock = _connect(router)
    assert _read_all(sock) == b""  # closed after limits.header_timeout_s (1 s here)
    sock.close()


def test_headers_that_never_finish_get_408(router) -> None:
    sock = _connect(router)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    reply = _read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]


def test_a_body_shorter_than_its_content_length_gets_408(router) -> None:
    sock = _connect(router)
    sock.sendall(
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 500\r\n\r\n{"model": "llama3.2:3b"'
    )
    reply = _read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert b"did not arrive" in reply
    _healthy(router)


def test_a_body_in_slow_pieces_is_read_whole_when_each_comes_in_time(router) -> None:
    # each piece comes within body_timeout_s (1 s) of the last, the whole takes longer:
    # the first piece is read with no timer (it is here), the others each with one
    body = (
        b'{"model": "llama3.2:3b", "stream": false, '
        b'"messages": [{"role": "user", "content": "hi"}]}'
    )
    sock = _connect(router)
    sock.sendall(
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10]
    )
    for start in (10, 40):
        time.sleep(0.6)
        sock.sendall(body[start : start + 30] if start == 10 else body[start:])
    reply = _read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b'"done":true' in reply.replace(b" ", b"")


@pytest.mark.parametrize("waits", [True, False], ids=["client-waits", "body-sent-at-once"])
def test_expect_100_continue_gets_its_interim_answer(router, waits: bool) -> None:
    # curl sends large bodies this way: headers first, the body once the server says 100
    body = b'{"model": "llama3.2:3b", "stream": false, "prompt": "hi"}'
    head = (
        b"POST /api/generate HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    sock = _connect(router)
    if waits:
        sock.sendall(head)
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        reply = interim + _read_all(sock)
    else:
        sock.sendall(head + body)  # a client that does not wait is answered the same
        reply = _read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), reply[:200]
    assert b'"done":true' in reply.replace(b" ", b"")


@pytest.mark.parametrize("path", JSON_POSTS)
def test_json_nested_100000_deep_is_400_everywhere(router, path: str) -> None:
    body = b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reply = httpx.post(
        router.url + path, content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400, reply.text[:200]
    assert "nested" in reply.text


def test_nesting_hidden_in_strings_is_no_problem(router) -> None:
    body = dict(CHAT, messages=[{"role": "user", "content": "[" * 500 + "]" * 500}])
    assert httpx.post(router.url + "/api/chat", json=body).status_code == 200


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/v1/chat/completions"])
def test_numbers_out_of_range_are_400(router, path: str) -> None:
    body = (
        b'{"model": "llama3.2:3b", "prompt": "hi", "messages": [{"role": "user", '
        b'"content": "hi"}], "options": {"temperature": 1e400}, "temperature": 1e400}'
    )
    reply = httpx.post(
        router.url + path, content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400 and "out of range" in reply.text


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/chat", {"messages": []}),
        ("/api/generate", {"prompt": "x"}),
        ("/api/embed", {"input": "x"}),
        ("/api/embeddings", {"prompt": "x"}),
        ("/api/show", {}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
        ("/v1/completions", {"prompt": "x"}),
        ("/v1/embeddings", {"input": "x"}),
        ("/api/generate-image", {"prompt": "x"}),
        ("/v1/images/generations", {"prompt": "x"}),
    ],
)
def test_model_names_over_256_characters_are_400(router, path: str, body: dict) -> None:
    reply = httpx.post(router.url + path, json={**body, "model": "m" * 10_000})
    assert reply.status_code == 400, reply.text[:200]
    assert "256" in reply.text
    assert len(reply.content) < 2000  # the name is not echoed back


def test_a_long_model_name_in_a_multipart_form_is_400(router) -> None:
    files = {"file": ("a.wav", b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav")}
    reply = httpx.post(
        router.url + "/v1/audio/transcriptions", data={"model": "m" * 300}, files=files
    )
    assert reply.status_code == 400 and "256" in reply.text


def test_invalid_utf8_in_a_multipart_text_field_is_400(router) -> None:
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="model"\r\n\r\n\xff\xfe\xfa\r\n'
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\nRIFF\r\n--XX--\r\n"
    )
    for path in ("/api/transcribe", "/v1/audio/transcriptions"):
        reply = httpx.post(
            router.url + path,
            content=body,
            headers={"content-type": "multipart/form-data; boundary=XX"},
        )
        assert reply.status_code == 400 and "UTF-8" in reply.text, (path, reply.text)


def test_a_nul_byte_in_a_path_is_404_without_a_traceback(
    router, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for path in ("/dashboard/static/%00x.js", "/api/tags%00", "/%00"):
        reply = httpx.get(router.url + path)
        assert reply.status_code in (400, 404), path
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_router_answers_at_once_after_the_abuse(router) -> None:
    started = time.monotonic()
    reply = httpx.post(router.url + "/api/chat", json=CHAT, timeout=30)
    assert reply.status_code == 200 and reply.json()["done"] is True
    assert time.monotonic() - started < 30


def test_many_half_open_connections_are_all_closed_and_others_are_served(router) -> None:
    idle = [_connect(router) for _ in range(100)]
    reply = httpx.post(router.url + "/api/chat", json=CHAT, timeout=30)
    assert reply.status_code == 200  # served while 100 connections sit idle
    for sock in idle:
        assert _read_all(sock) == b""
        sock.close()


def test_a_slow_reader_does_not_hold_up_other_clients(make_sim, make_router) -> None:
    sim = make_sim(name="a", reply_tokens=400)
    router = make_router(nodes=[sim])
    body = dict(CHAT, stream=True)
    with httpx.stream("POST", router.url + "/api/chat", json=body) as slow:
        lines = slow.iter_lines()
        next(lines)  # then read nothing while others are served
        for _ in range(5):
            other = httpx.post(router.url + "/api/chat", json=CHAT, timeout=30)
            assert other.status_code == 200 and other.json()["done"] is True
        rest = [line for line in lines if line]
    assert '"done":true' in rest[-1].replace(" ", "")
