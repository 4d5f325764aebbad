"""Behind herd's own server an Ollama stream is written from the node connection's callback
(``relay.RelayPump``): a client that stops reading holds the node back, one that leaves is
noticed while the node is silent, and the bytes are the same as the task-driven relay's.

The node is a real aiohttp server (tests/core/odd_node.py); the router is herd's real
server on a free 127.0.0.1 port.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Any

import httpx
import openai
import pytest
from herd._engine.relay import RelayBody, RelayPump

from tests.core.odd_node import FLOOD_LINES, MODEL, WORDS, chunk, final_object
from tests.core.test_exchange_streams import CHAT, collector, odd, router
from tests.core.trace_collector import wait_traces

__all__ = ["collector", "odd", "router"]  # fixtures shared with the stream tests


@pytest.fixture
def pumps(monkeypatch: pytest.MonkeyPatch) -> list[RelayPump]:
    """The pumps the router starts (so a test knows the stream took that path)."""
    started: list[RelayPump] = []
    original = RelayBody.pump

    def pump(self: RelayBody, *args: Any) -> RelayPump | None:
        made = original(self, *args)
        if made is not None:
            started.append(made)
        return made

    monkeypatch.setattr(RelayBody, "pump", pump)
    return started


def _settled(read: Any, quiet_s: float = 1.0, timeout_s: float = 30.0) -> int:
    """``read()`` once it stopped changing for ``quiet_s`` (bounded by ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return value
    return value


def test_a_stream_is_pumped_and_arrives_whole(router, odd, pumps) -> None:
    with httpx.stream("POST", router.url + "/api/chat", json=CHAT, timeout=30) as reply:
        assert reply.status_code == 200
        lines = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    assert len(pumps) == 1
    assert "".join(line["message"]["content"] for line in lines) == "".join(WORDS)
    assert lines[-1]["done"] is True
    (trace,) = wait_traces(1)
    assert trace.status == "completed", trace.error


def test_a_client_that_stops_reading_holds_the_node_back(router, odd, pumps) -> None:
    odd.mode = "flood"
    total = FLOOD_LINES * len((json.dumps({"x": "x" * 4096})).encode())
    with httpx.stream("POST", router.url + "/api/chat", json=CHAT, timeout=60) as reply:
        assert reply.status_code == 200
        held = _settled(lambda: odd.written)
        # What the node got out is what the sockets, the router's 1 MB of reply buffer and
        # the client connection's buffer hold: a small part of the stream.
        assert held < total / 2, f"the node wrote {held} of {total} bytes with nobody reading"
        lines = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    assert len(pumps) == 1
    assert len(lines) == FLOOD_LINES + 1 and lines[-1]["done"] is True
    assert all(len(line["message"]["content"]) == 4096 for line in lines[:-1])
    (trace,) = wait_traces(1)
    assert trace.status == "completed", trace.error


def test_a_client_that_leaves_while_the_node_is_silent_is_noticed_at_once(
    router, odd, pumps
) -> None:
    odd.mode = "stall_mid"  # two lines, then silence (30 s at most)
    host, port = router.url.removeprefix("http://").split(":")
    body = json.dumps(CHAT).encode()
    with socket.create_connection((host, int(port)), timeout=30) as client:
        client.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: herd\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        seen = b""
        while seen.count(b"\n{") < 1:  # the headers and the first two lines
            seen += client.recv(65536)
        left = time.monotonic()
    (trace,) = wait_traces(1, timeout=20)
    assert len(pumps) == 1
    assert trace.status == "client_disconnected"
    assert time.monotonic() - left < 10  # not when the node speaks again, 30 s later


def test_the_pumped_bytes_are_the_relays_bytes(odd, make_router, collector) -> None:
    """The same request, pumped and through the task-driven relay: the same bytes."""
    pumped = make_router(nodes=[odd.entry()], plugins={"load": [collector]})
    pumped.poll_now()

    def body() -> bytes:
        reply = httpx.post(pumped.url + "/api/chat", json=CHAT, timeout=30)
        assert reply.status_code == 200
        return reply.content

    first = body()
    original = RelayBody.pump
    try:
        RelayBody.pump = lambda self, *args: None  # type: ignore[method-assign]
        second = body()
    finally:
        RelayBody.pump = original  # type: ignore[method-assign]
    assert first == second
    assert first.count(b"\n") == len(WORDS) + 1  # every word's line, then the final one


def test_a_fault_inside_the_pump_ends_the_response_and_is_traced(
    router, odd, pumps, monkeypatch
) -> None:
    """A bug in a callback must not leave the response waiting forever."""
    from herd._engine.relay import RelayRun

    def broken(self: RelayRun, block: bytes) -> bytes:
        raise RuntimeError("planted")

    monkeypatch.setattr(RelayRun, "block", broken)
    url = router.url + "/api/chat"
    # the response ends without its chunked end
    with pytest.raises(httpx.HTTPError), httpx.stream("POST", url, json=CHAT, timeout=30) as reply:
        reply.read()
    (trace,) = wait_traces(1)
    assert len(pumps) == 1
    assert trace.status == "failed" and "planted" in trace.error
    monkeypatch.undo()
    assert httpx.post(router.url + "/api/chat", json=CHAT, timeout=30).status_code == 200


def test_an_openai_stream_is_pumped_line_by_line_through_its_translator(router, odd, pumps) -> None:
    odd.mode = "flood"  # many lines to a read: each must reach the translator on its own
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text, finish = [], None
    for event in stream:
        for choice in event.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert len(pumps) == 1
    assert "".join(text) == "x" * 4096 * FLOOD_LINES
    assert finish == "stop"
    (trace,) = wait_traces(1)
    assert trace.status == "completed", trace.error


class _CloseDelimitedNode:
    """A node whose streamed reply has neither Content-Length nor chunking: its end is the
    connection's close (valid HTTP/1.1, and what some servers and proxies send)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed: the test is over
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                found = re.search(rb"(?i)content-length: *(\d+)", head)  # GETs have none
                length = int(found.group(1)) if found else 0
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(self._answer(head.split(b" ")[1].decode()))

    def _answer(self, path: str) -> bytes:
        if path == "/api/chat":
            lines = [json.dumps(chunk(word, "chat")) + "\n" for word in WORDS]
            lines.append(json.dumps(final_object(len(WORDS))))  # no newline after the last
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            return head + b"Connection: close\r\n\r\n" + "".join(lines).encode()
        body = {"/api/tags": {"models": [{"name": MODEL, "model": MODEL, "size": 1}]}}
        data = json.dumps(body.get(path, {"models": [], "version": "0.9.0"})).encode()
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(data), data)
        )


def test_a_close_delimited_stream_is_pumped_to_its_end(make_router, collector, pumps) -> None:
    node = _CloseDelimitedNode()
    try:
        router = make_router(
            nodes=[{"name": "plain", "url": node.url}], plugins={"load": [collector]}
        )
        router.poll_now()
        reply = httpx.post(router.url + "/api/chat", json=CHAT, timeout=30)
    finally:
        node.server.close()
    lines = [json.loads(line) for line in reply.text.splitlines() if line.strip()]
    assert len(pumps) == 1
    assert "".join(line["message"]["content"] for line in lines) == "".join(WORDS)
    assert lines[-1]["done"] is True
    (trace,) = wait_traces(1)
    assert trace.status == "completed", trace.error
