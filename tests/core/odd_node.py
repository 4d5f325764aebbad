"""A real Ollama-compatible node written the way a newcomer would write one in Python.

It answers on 127.0.0.1 (a free port) with ``json.dumps`` at its default separators (a
space after every colon and comma), keys in its own order, ``\\u`` escapes for non-ASCII
text, CRLF line ends and no newline after the last line. ``mode`` makes it misbehave the
way broken nodes do: an empty 200, non-JSON lines, a stream with no final object, a 400,
a stream that goes silent half way; or floods its reader with a long, fast stream.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

from aiohttp import web

MODEL = "odd:1b"
WORDS = ["Grüße", " from", " the", " odd", " node", " ✓"]
PROMPT_TOKENS = 7
FLOOD_LINES = 16_000  # "flood": about 66 MB, far more than the sockets between can hold


def final_object(count: int) -> dict[str, Any]:
    """The last line, keys in another order than Ollama's."""
    return {
        "eval_count": count,
        "done": True,
        "prompt_eval_count": PROMPT_TOKENS,
        "eval_duration": 50_000_000,
        "load_duration": 1_000_000,
        "done_reason": "stop",
        "total_duration": 60_000_000,
        "message": {"content": "", "role": "assistant"},
        "created_at": "2026-01-01T00:00:00Z",
        "model": MODEL,
    }


def chunk(word: str, endpoint: str) -> dict[str, Any]:
    text = {"message": {"content": word, "role": "assistant"}}
    if endpoint == "generate":
        text = {"response": word}
    return {"done": False, **text, "created_at": "2026-01-01T00:00:00Z", "model": MODEL}


class OddNode:
    """The node, in a thread of its own. ``mode`` may be changed between requests."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.port = 0
        self.written = 0  # bytes of "flood" lines written
        self.requests = 0  # inference requests heard
        self.last_body = b""  # the last one's body, as it came
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def entry(self) -> dict[str, str]:
        return {"name": "odd", "url": self.url}

    async def _tags(self, _: web.Request) -> web.Response:
        model = {"name": MODEL, "model": MODEL, "size": 1_000_000_000, "digest": "x"}
        model["capabilities"] = ["completion"]
        return web.Response(text=json.dumps({"models": [model]}), content_type="application/json")

    async def _ps(self, _: web.Request) -> web.Response:
        return web.Response(text=json.dumps({"models": []}), content_type="application/json")

    async def _version(self, _: web.Request) -> web.Response:
        return web.Response(text=json.dumps({"version": "0.9.0"}), content_type="application/json")

    async def _infer(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.path.rsplit("/", 1)[-1]
        self.last_body = await request.read()
        self.requests += 1
        body = json.loads(self.last_body)
        mode = self.mode
        if mode == "refuse":
            text = json.dumps({"error": f'"{MODEL}" does not support {endpoint}'})
            return web.Response(status=400, text=text, content_type="application/json")
        if mode == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        if body.get("stream") is False:
            if mode == "garbage_first":
                return web.Response(status=200, text="<html>oops</html>", content_type="text/html")
            whole = final_object(len(WORDS))
            if endpoint == "generate":
                whole["response"] = "".join(WORDS)
            else:
                whole["message"]["content"] = "".join(WORDS)
            return web.Response(text=json.dumps(whole), content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        if mode == "flood":
            return await self._flood(response, endpoint)
        lines = [json.dumps(chunk(word, endpoint)) for word in WORDS]
        if mode == "garbage_first":
            lines[0] = "this is not json"
        if mode == "garbage_mid":
            lines[3] = "<html>proxy error</html>"
        if mode != "no_final":
            lines.append(json.dumps(final_object(len(WORDS))))
        for index, line in enumerate(lines):
            last = index == len(lines) - 1
            await response.write((line if last else line + "\r\n").encode())
            if mode == "stall_mid" and index == 1:
                await self._stall()
        await response.write_eof()
        return response

    async def _flood(self, response: web.StreamResponse, endpoint: str) -> web.StreamResponse:
        """FLOOD_LINES lines of 4 KB as fast as the reader takes them (``written`` counts)."""
        line = (json.dumps(chunk("x" * 4096, endpoint)) + "\n").encode()
        for _ in range(FLOOD_LINES):
            if self._stopping:
                break
            await response.write(line)  # waits while the router holds the node back
            self.written += len(line)
        await response.write(json.dumps(final_object(FLOOD_LINES)).encode())
        await response.write_eof()
        return response

    async def _stall(self) -> None:
        """Go silent mid-stream until the node stops (at most 30 s: the test is bounded)."""
        for _ in range(300):
            if self._stopping:
                return
            await asyncio.sleep(0.1)

    def start(self) -> OddNode:
        app = web.Application()
        app.router.add_get("/api/tags", self._tags)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_get("/api/version", self._version)
        app.router.add_post("/api/chat", self._infer)
        app.router.add_post("/api/generate", self._infer)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.SockSite(self._runner, sock).start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="odd-node", daemon=True)
        self._thread.start()
        if not started.wait(30):
            raise TimeoutError("the odd node did not start")
        return self

    def stop(self) -> None:
        self._stopping = True  # a stalled answer ends, so the server's cleanup is quick
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=15)
