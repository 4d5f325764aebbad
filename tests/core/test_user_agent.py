"""herd names itself to its nodes: every request, polls and inference alike, carries
``User-Agent: herd/<version>`` (a proxy in front of a node may refuse requests with none)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import herd
import httpx
import pytest

TAGS = {"models": [{"name": "llama3.2:3b", "model": "llama3.2:3b", "digest": "d", "size": 2}]}
CHAT = {"model": "llama3.2:3b", "message": {"role": "assistant", "content": "hi"}, "done": True}


class _Node(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]]

    def _answer(self, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("User-Agent")))
        replies = {"/api/tags": TAGS, "/api/ps": {"models": []}, "/api/version": {"version": "1"}}
        self._answer(replies.get(self.path, {}))

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.path, self.headers.get("User-Agent")))
        self._answer(CHAT)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Node", (_Node,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_every_request_to_a_node_names_herd(make_router, node) -> None:
    url, seen = node
    router = make_router(nodes=[{"name": "n", "url": url}])
    reply = httpx.post(
        router.url + "/api/chat",
        json={
            "model": "llama3.2:3b",
            "stream": False,
            "messages": [{"role": "user", "content": "x"}],
        },
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    paths = {path for path, _ in seen}
    assert {"/api/tags", "/api/chat"} <= paths  # a poll, and the request itself
    assert {agent for _, agent in seen} == {f"herd/{herd.__version__}"}
