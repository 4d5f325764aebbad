"""An OpenAI-compatible server's SSE, read off a real socket as the SSE framing says.

The server (aiohttp on 127.0.0.1) splits an event's JSON over several ``data:`` lines, uses
CRLF line ends, sends comments and ``event:``/``id:`` fields, and ends without a newline.
"""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
from aiohttp import web
from herd._engine.node_lines import NodeLines
from herd.protocol.openai_upstream import NdjsonFromSse

CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Grüße"}}]},
    {"choices": [{"index": 0, "delta": {"content": " ✓"}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}},
]


def _event(chunk: dict) -> bytes:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    text = json.dumps({**base, **chunk}, indent=1)  # one JSON object over several lines
    lines = [
        f"data: {line}" if n % 2 else f"data:{line}" for n, line in enumerate(text.split("\n"))
    ]
    return ("\r\n".join([": keep-alive", "event: message", "id: 1", *lines]) + "\r\n\r\n").encode()


async def _sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in CHUNKS:
        await response.write(_event(chunk))
    await response.write(b"data: [DONE]")  # no newline after the last event
    await response.write_eof()
    return response


async def _read_through_the_translator() -> bytes:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _sse)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    translator = NdjsonFromSse("m")
    out = b""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={}) as reply,
        ):
            async for data in reply.content.iter_chunked(5):  # odd splits, as off a socket
                out += translator.feed(data)
        out += translator.close()
    finally:
        await runner.cleanup()
    return out


def test_multi_line_sse_events_become_ndjson_with_the_final_statistics() -> None:
    ndjson = asyncio.run(_read_through_the_translator())
    lines = [json.loads(line) for line in ndjson.splitlines()]
    assert all("error" not in line for line in lines), lines
    assert "".join(line["message"]["content"] for line in lines) == "Grüße ✓"
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["prompt_eval_count"] == 7 and final["eval_count"] == 2
    reader = NodeLines()  # what the Exchange reads: a finished answer, nothing broken
    assert reader.check(ndjson) == len(ndjson)
    assert reader.final is not None and reader.final.eval_count == 2 and not reader.error
