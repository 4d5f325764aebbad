"""Connections to an OpenAI-type node's server: its keep-alive against herd's.

Such servers (uvicorn under vLLM, SGLang and llama-cpp-python; llama.cpp's own) close an
idle connection after 5 s. A request sent on one as it closes is lost, so herd must drop
its idle connections to them sooner.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx

LLAMA = "llama3.2:3b"


class _ClosesIdleConnections:
    """An OpenAI-compatible server whose keep-alive runs out after ``idle_s``, racing the
    client: a request that comes on a connection idle longer than that is read, then the
    connection is closed without an answer (as a uvicorn-served vLLM or llama-cpp-python
    does to a request sent the moment it closes an idle connection, after 5 s)."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.dropped = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        last = time.monotonic()
        with conn, reader:
            while True:
                line = reader.readline()
                if not line:
                    return
                length = 0
                while (header := reader.readline()) not in (b"\r\n", b""):
                    if header.lower().startswith(b"content-length:"):
                        length = int(header.split(b":")[1])
                reader.read(length)
                if time.monotonic() - last > self.idle_s:
                    self.dropped += 1
                    return  # closed as it came: the client sees "server disconnected"
                if line.startswith(b"GET /v1/models"):
                    body = json.dumps({"object": "list", "data": [{"id": LLAMA}]})
                else:
                    message = {"role": "assistant", "content": "hello"}
                    choice = {"index": 0, "message": message, "finish_reason": "stop"}
                    body = json.dumps(
                        {"id": "c", "object": "chat.completion", "created": 1, "model": LLAMA,
                         "choices": [choice]}
                    )  # fmt: skip
                head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                head += f"Content-Length: {len(body)}\r\n\r\n"
                conn.sendall(head.encode() + body.encode())
                last = time.monotonic()

    def close(self) -> None:
        self._listener.close()


def test_a_connection_the_server_may_be_closing_is_not_reused(make_router: Any) -> None:
    """Such servers close an idle connection after 5 s; herd drops its own idle ones
    sooner, so a request never goes out on one the server is closing (it kept them 30 s:
    a chat after a pause failed with "server disconnected")."""
    server = _ClosesIdleConnections(idle_s=4.5)
    try:
        router = make_router(
            nodes=[{"name": "vllm", "url": server.url, "type": "openai"}],
            fleet={"poll_interval": 120, "discover_local": False},
        )
        body = {"model": LLAMA, "stream": False, "messages": [{"role": "user", "content": "a"}]}
        for pause in (0.0, 5.0):  # the second after a pause past the server's keep-alive
            time.sleep(pause)
            reply = httpx.post(router.url + "/api/chat", json=body, timeout=30)
            assert reply.status_code == 200, reply.text
        assert server.dropped == 0
    finally:
        server.close()
