"""The Ollama backend's replies over herd.node_http: against herd-sim, a uvicorn-served
app and a raw server writing what broken nodes write."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import msgspec
import pytest
import uvicorn
from herd.interfaces import BackendContext, InferenceRequest, NodeFailure, StreamBroken
from herd.settings import NodeConfig
from herd.testing import SimConfig, SimNode, expected_reply
from herd_plugins.backend_ollama import OllamaBackend

from tests.core.raw_node import RawNode, RawRequest, chunked, write_slowly

MODEL = "llama3.2:3b"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def chat(prompt: str, stream: bool = True, traceparent: str = "") -> InferenceRequest:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    return InferenceRequest(
        api="ollama",
        endpoint="chat",
        kind="text",
        model=MODEL,
        model_key=MODEL,
        body=body,
        stream=stream,
        traceparent=traceparent,
    )


async def backend_for(url: str, **timeouts: float) -> tuple[OllamaBackend, aiohttp.ClientSession]:
    http = aiohttp.ClientSession()
    node = NodeConfig(name="n", url=url)
    return OllamaBackend(node, OllamaBackend.Config(), BackendContext(http=http, **timeouts)), http


async def collect(lines: AsyncIterator[bytes]) -> list[bytes]:
    return [line async for line in lines]


def test_a_stream_from_herd_sim_is_whole_and_the_connection_reused() -> None:
    async def scenario(url: str) -> tuple[list[str], list[str], bool]:
        backend, http = await backend_for(url)
        try:
            texts, whole = [], []
            for prompt, blocks in [("hello there", True), ("again", False)]:
                reply = await backend.open(chat(prompt))
                assert reply.streaming and reply.status == 200
                rest = await collect(reply.rest_blocks() if blocks else reply.rest())
                await reply.aclose()
                lines = [reply.first, *b"".join(rest).splitlines(keepends=True)]
                assert all(line.endswith(b"\n") and line.strip() for line in lines)
                objects = [json.loads(line) for line in lines]
                assert objects[-1]["done"] is True
                texts.append("".join(o["message"]["content"] for o in objects))
            single = await backend.open(chat("whole", stream=False))
            whole.append(json.loads(single.first)["message"]["content"])
            reused = len(backend._client._idle) == 1  # one connection served all three
        finally:
            await backend.close()
            await http.close()
        return texts, whole, reused

    with SimNode(SimConfig(reply_tokens=12)) as node:
        texts, whole, reused = run(scenario(node.url))
    assert texts == ["".join(expected_reply(MODEL, p, 12)) for p in ["hello there", "again"]]
    assert whole == ["".join(expected_reply(MODEL, "whole", 12))]
    assert reused


@pytest.mark.parametrize("suffix", ["/api", "/api/"])
def test_a_node_url_written_with_the_api_path_reaches_the_same_server(suffix: str) -> None:
    """``http://gpu:11434/api`` is how a client's base URL is sometimes written: the
    backend polls and chats at ``/api/...``, never at ``/api/api/...``."""

    async def scenario(url: str) -> tuple[int, str]:
        backend, http = await backend_for(url + suffix)
        try:
            report = await backend.poll()
            reply = await backend.open(chat("hello", stream=False))
            text = json.loads(reply.first)["message"]["content"]
        finally:
            await backend.close()
            await http.close()
        return len(report.models), text

    with SimNode(SimConfig(reply_tokens=5)) as node:
        models, text = run(scenario(node.url))
    assert models > 0
    assert text == "".join(expected_reply(MODEL, "hello", 5))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A node under uvicorn: /api/chat streams three lines; /api/show answers 404."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/api/show":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b'{"error":"model not found"}'})
        return
    headers = [(b"content-type", b"application/x-ndjson")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    prompt = json.loads(body)["messages"][0]["content"]
    for index, word in enumerate([prompt, " and", " more"]):
        line = msgspec.json.encode({"message": {"content": word}, "done": index == 2})
        await send({"type": "http.response.body", "body": line + b"\n", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def uvicorn_node() -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(_asgi, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_a_stream_from_a_uvicorn_served_node(uvicorn_node: str) -> None:
    async def scenario() -> tuple[list[str], NodeFailure]:
        backend, http = await backend_for(uvicorn_node)
        try:
            words = []
            for prompt in ["one", "two"]:
                reply = await backend.open(chat(prompt))
                rest = await collect(reply.rest_blocks())
                for line in [reply.first, *b"".join(rest).splitlines()]:
                    words.append(json.loads(line)["message"]["content"])
            with pytest.raises(NodeFailure) as caught:
                await backend.show(MODEL)
        finally:
            await backend.close()
            await http.close()
        return words, caught.value

    words, missing = run(scenario())
    assert words == ["one", " and", " more", "two", " and", " more"]
    assert missing.not_found and missing.status == 404 and missing.message == "model not found"


async def _odd(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    path = request.request_line.split()[1]
    if path == "/api/show":  # a 400 the client should see, written in pieces
        body = b'{"error":"bad option"}'
        head = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(body)
        await write_slowly(writer, head + body)
    elif path == "/api/delete":
        writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
    elif path == "/api/copy":
        writer.write(b"HTTP/1.1 307 Elsewhere\r\nLocation: http://x/\r\nContent-Length: 0\r\n\r\n")
    elif path == "/api/pull":  # blank lines between, and no newline after the last one
        lines = b'{"status":"a"}\n\n\n{"status":"b"}\r\n\n{"status":"success"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        await write_slowly(writer, chunked(lines[:9], lines[9:30], lines[30:]))
    elif path == "/api/chat":  # the node dies after two lines
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        writer.write(chunked(b'{"n":1}\n{"n":2}\n')[:-5])  # without the last chunk
        return False
    return True


def test_error_answers_and_odd_streams_keep_their_meaning() -> None:
    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with RawNode(_odd) as node:
            backend, http = await backend_for(node.url)
            try:
                bad = await backend.show(MODEL)
                seen["400"] = (bad.status, bad.first, bad.streaming)
                for name, call in [("503", backend.delete(MODEL)), ("307", backend.copy("a", "b"))]:
                    with pytest.raises(NodeFailure) as caught:
                        await call
                    seen[name] = caught.value
                pull = await backend.pull(MODEL)
                seen["pull"] = [pull.first, *await collect(pull.rest_blocks())]
                pull = await backend.pull(MODEL)
                seen["pull lines"] = [pull.first, *await collect(pull.rest())]
                broken = await backend.open(chat("x"))
                with pytest.raises(StreamBroken) as cut:
                    await collect(broken.rest())
                seen["cut"] = (broken.first, str(cut.value))
                seen["accepted"] = node.accepted
            finally:
                await backend.close()
                await http.close()
        return seen

    seen = run(scenario())
    assert seen["400"] == (400, b'{"error":"bad option"}', False)
    assert seen["503"].status == 503 and "busy" in seen["503"].message
    assert seen["307"].status == 307 and "redirect" in seen["307"].message
    success = b'{"status":"success"}\n'
    blocks = seen["pull"]  # how lines group into blocks depends on how they arrived
    assert all(block.endswith(b"\n") and b"\n\n" not in block for block in blocks)
    assert b"".join(blocks) == b'{"status":"a"}\n{"status":"b"}\r\n' + success
    assert seen["pull lines"] == [b'{"status":"a"}\n', b'{"status":"b"}\r\n', success]
    assert seen["cut"] == (b'{"n":1}\n', "the connection closed before the reply was complete")
    assert seen["accepted"] == 1  # every answer before the broken one kept the connection


def test_an_abandoned_stream_closes_its_connection() -> None:
    hung_up: list[bool] = []

    async def endless(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.request_line.startswith("GET"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(3000):  # lines until the client hangs up (a bounded while)
            try:
                writer.write(b'8\r\n{"n":1}\n\r\n')
                await writer.drain()
            except ConnectionError:
                hung_up.append(True)
                break
            await asyncio.sleep(0.01)
        return False

    async def scenario() -> tuple[bytes, int]:
        async with RawNode(endless) as node:
            backend, http = await backend_for(node.url)
            try:
                reply = await backend.open(chat("x"))
                lines = reply.rest()
                await reply.aclose()  # the client went away after the first line
                await lines.aclose()
                await node.closed.wait()  # the node saw the connection close
                answer = await backend._client.request("GET", "/")
                return await answer.read_all(), node.accepted
            finally:
                await backend.close()
                await http.close()

    assert run(scenario()) == (b"ok", 2)
    assert hung_up == [True]  # the node's writes failed: the client had closed


def test_a_silent_node_and_a_traceparent() -> None:
    async def quiet(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.header("traceparent") == "00-silent-01":
            await asyncio.sleep(30)  # never answers within the test's first_byte_timeout
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b'{"n":1}\n')[:-5])
        return True  # then silence: read_timeout ends it

    async def scenario() -> tuple[str, str, str | None]:
        async with RawNode(quiet) as node:
            backend, http = await backend_for(node.url, first_byte_timeout=0.3, read_timeout=0.3)
            try:
                with pytest.raises(NodeFailure) as early:
                    await backend.open(chat("x", traceparent="00-silent-01"))
                reply = await backend.open(chat("x", traceparent="00-abc-01"))
                with pytest.raises(StreamBroken) as late:
                    await collect(reply.rest_blocks())
            finally:
                await backend.close()
                await http.close()
            return early.value.message, str(late.value), node.requests[-1].header("traceparent")

    early, late, traceparent = run(scenario())
    assert early == "node n timed out before answering"
    assert late == "timed out"
    assert traceparent == "00-abc-01"


_STREAMED_ANYWAY = {
    "/api/chat": [
        b'{"model":"m","message":{"role":"assistant","content":"hel"},"done":false}\n',
        b'{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"a":1}]}}\n',
        b'{"model":"m","message":{"content":"lo","tool_calls":[{"b":2}]},"done":false}\n',
        b'{"model":"m","message":{"role":"assistant","content":""},"done":true,'
        b'"done_reason":"stop","eval_count":3,"prompt_eval_count":5}\n',
    ],
    "/api/generate": [
        b'{"model":"m","thinking":"hm","response":"","done":false}\n',
        b'{"model":"m","response":"hi ","done":false,"logprobs":[{"token":"hi "}]}\n',
        b'{"model":"m","response":"there","done":true,"context":[1,2],"eval_count":2,'
        b'"logprobs":[{"token":"there"}]}\n',
    ],
    "/broken": [b'{"model":"m","response":"a","done":false}\n'],
    "/bad": [b'{"model":"m","response":"a","done":false}\n', b"<html>oops</html>\n"],
}


async def _streams_anyway(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    """A node that streams though it was asked not to (``stream: false``)."""
    marker = json.loads(request.body).get("marker", "")
    path = marker or request.request_line.split()[1]
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n")
    writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
    body = chunked(*_STREAMED_ANYWAY[path])
    writer.write(body[:-5] if path == "/broken" else body)  # /broken dies before its end
    await writer.drain()
    return path != "/broken"


def test_a_stream_sent_for_a_request_asked_whole_is_joined_into_one_answer() -> None:
    def asked_whole(endpoint: str, marker: str = "") -> InferenceRequest:
        request = chat("x", stream=False)
        request.endpoint = endpoint
        if marker:
            request.body["marker"] = marker
        return request

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with RawNode(_streams_anyway) as node:
            backend, http = await backend_for(node.url)
            try:
                for endpoint in ("chat", "generate"):
                    reply = await backend.open(asked_whole(endpoint))
                    seen[endpoint] = (reply.streaming, json.loads(reply.first))
                streamed = await backend.open(chat("x"))  # asked as a stream: left one
                seen["streamed"] = streamed.streaming
                await streamed.aclose()
                for marker in ("/broken", "/bad"):
                    with pytest.raises(NodeFailure) as caught:
                        await backend.open(asked_whole("generate", marker))
                    seen[marker] = str(caught.value)
            finally:
                await backend.close()
                await http.close()
        return seen

    seen = run(scenario())
    streaming, answer = seen["chat"]
    assert not streaming
    assert answer["message"] == {
        "role": "assistant",
        "content": "hello",
        "tool_calls": [{"a": 1}, {"b": 2}],
    }
    assert (answer["done"], answer["eval_count"], answer["prompt_eval_count"]) == (True, 3, 5)
    streaming, answer = seen["generate"]
    assert not streaming
    assert (answer["response"], answer["thinking"], answer["context"]) == ("hi there", "hm", [1, 2])
    assert answer["done"] is True and answer["eval_count"] == 2
    assert answer["logprobs"] == [{"token": "hi "}, {"token": "there"}]
    assert seen["streamed"] is True
    assert "failed mid-answer" in seen["/broken"]
    assert "not a JSON object" in seen["/bad"]
