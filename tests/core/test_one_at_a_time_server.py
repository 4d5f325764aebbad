"""A server that serves one request at a time and cuts the running stream for a waiting one
(llama-cpp-python's default, ``interrupt_requests``): it ends the cut stream with
``data: [DONE]`` and no ``finish_reason``. Behind herd, untold and agentless, no client
may get an empty answer for a whole one: a stream cut before its first word is the node's
"full" (the request waits its turn again and the learned limit comes down to 1), and once
the limit is 1 nothing is cut any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from herd.protocol.openai_upstream import CUT_SHORT, NdjsonFromSse

from tests.core.threaded_app import serve_app

MODEL = "tiny:1b"
WORDS = [f" w{i}" for i in range(6)]
FIRST_WORD_S = 0.3  # before its first word, the running stream looks for waiting requests


class OneAtATime:
    """The server (an aiohttp app in a thread of its own, on a free 127.0.0.1 port)."""

    def __init__(self) -> None:
        self.url = ""
        self.cut = 0
        self.whole = 0
        self._lock = asyncio.Lock()  # (bound to the server's loop when first waited on)
        self._waiting = 0
        self._served = contextlib.ExitStack()

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self._waiting += 1
        async with self._lock:
            self._waiting -= 1
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

            async def event(delta: dict[str, Any], finish: str | None = None) -> None:
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                data = json.dumps({**base, "choices": [choice]})
                await response.write(f"data: {data}\n\n".encode())

            await event({"role": "assistant"})
            await asyncio.sleep(FIRST_WORD_S)
            for word in WORDS:
                if self._waiting:  # another request waits: this one is cut, as is
                    self.cut += 1
                    await response.write(b"data: [DONE]\n\n")
                    return response
                await event({"content": word})
            await event({}, "stop")
            await response.write(b"data: [DONE]\n\n")
            self.whole += 1
            return response

    def __enter__(self) -> OneAtATime:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self.url = self._served.enter_context(serve_app(app))
        return self

    def __exit__(self, *_: object) -> None:
        self._served.close()


@pytest.fixture
def server() -> Iterator[OneAtATime]:
    with OneAtATime() as running:
        yield running


def test_a_stream_ended_without_a_finish_reason_is_an_error_not_an_answer() -> None:
    translator = NdjsonFromSse(MODEL)
    chunk = {"id": "c", "created": 1, "model": "m", "choices": [{"delta": {"role": "assistant"}}]}
    role = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    lines = translator.feed(role + b"data: [DONE]\n\n").splitlines()
    assert [json.loads(line) for line in lines] == [{"error": CUT_SHORT}]
    assert translator.cut and translator.finished


async def _stream(client: httpx.AsyncClient, url: str, index: int) -> tuple[int, str, bool]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"q{index}"}], "stream": True}
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as reply:
        text = (await reply.aread()).decode()
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e.strip()]
    words = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in events
        if e != "[DONE]" and "choices" in json.loads(e) and json.loads(e)["choices"]
    )
    errored = any(e != "[DONE]" and "error" in json.loads(e) for e in events)
    return reply.status_code, words, errored


def test_cut_streams_wait_their_turn_and_the_limit_learns_one(server, make_router) -> None:
    router = make_router(nodes=[{"name": "llama", "url": server.url, "type": "openai"}])

    async def burst(count: int) -> list[tuple[int, str, bool]]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(_stream(client, router.url, i) for i in range(count)))

    first = asyncio.run(burst(4))  # herd assumes 4 at once: the server cuts all but one
    whole = "".join(WORDS)
    assert all(status == 200 for status, _, _ in first)
    assert [words for _, words, _ in first] == [whole] * 4  # each waited its turn again
    assert server.cut >= 1 and server.whole == 4
    queue = httpx.get(router.url + "/fleet/queue", timeout=10).json()["nodes"]["llama"][MODEL]
    assert queue["concurrency"] == 1 and queue["concurrency_source"] == "learned"
    cut_before = server.cut
    second = asyncio.run(burst(4))  # one at a time now: herd holds the rest
    assert [(status, words, errored) for status, words, errored in second] == [
        (200, whole, False)
    ] * 4
    assert server.cut == cut_before and server.whole == 8
