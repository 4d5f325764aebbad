"""OllamaReply: taking a stream's lines as they arrive (take_blocks, for the relay pump)
gives the same bytes as reading them (rest_blocks), however the node's bytes are split."""

from __future__ import annotations

import asyncio

from herd_plugins.backend_ollama_replies import OllamaReply
from hypothesis import given, settings
from hypothesis import strategies as st


class _Arrivals:
    """A node response's body as it arrives: ``take`` without waiting, ``read`` in turn."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.waiting = list(chunks)
        self.arrived: list[bytes] = []
        self.complete = not chunks
        self.listener = None

    def arrive(self) -> None:
        self.arrived.append(self.waiting.pop(0))
        self.complete = not self.waiting  # the end comes with the last bytes

    def take(self) -> bytes:
        data, self.arrived = b"".join(self.arrived), []
        return data

    async def read(self) -> bytes:
        if self.waiting:
            self.arrive()
        return self.take()

    def close(self) -> None:
        pass


def _whole(data: bytes) -> bytes:
    """The whole lines in ``data``, blank ones dropped (what must be taken by now)."""
    end = data.rfind(b"\n") + 1
    return b"".join(line + b"\n" for line in data[:end].split(b"\n") if line)


def _taken(first_buffer: bytes, chunks: list[bytes]) -> bytes:
    """What the pump relays: everything take_blocks gives, after each arrival; each
    whole line is taken as soon as it is there, not when more bytes come, and the end
    as soon as the last bytes are taken (no arrival announces it)."""
    response = _Arrivals(chunks)
    reply = OllamaReply(200, "application/x-ndjson", b"{}\n", first_buffer, response)  # type: ignore[arg-type]
    out: list[bytes] = []
    arrived = first_buffer
    while True:  # as the pump takes: once per arrival, and again only when taken_all says
        block = reply.take_blocks()
        while block:
            out.append(block)
            block = reply.take_blocks() if reply.taken_all else b""
        if block is None:
            return b"".join(out)
        assert b"".join(out) == _whole(arrived)
        assert response.waiting, "take_blocks did not end the stream after its last bytes"
        arrived += response.waiting[0]
        response.arrive()


def _read(first_buffer: bytes, chunks: list[bytes]) -> bytes:
    response = _Arrivals(chunks)
    reply = OllamaReply(200, "application/x-ndjson", b"{}\n", first_buffer, response)  # type: ignore[arg-type]

    async def read_all() -> bytes:
        return b"".join([block async for block in reply.rest_blocks()])

    return asyncio.run(read_all())


_LINE = st.sampled_from(
    [b'{"done":false}\n', b'{"done":true}\n', b"\n", b"\r\n", b'{"a":1}\r\n', b"  \n", b'{"x"']
)


@settings(max_examples=400)
@given(st.lists(_LINE, max_size=8), st.data())
def test_taking_blocks_gives_what_reading_gives(lines: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(lines)
    ends = [len(b"".join(lines[: i + 1])) for i in range(len(lines))]  # where lines end
    at_ends = st.sampled_from(ends or [0])  # (cuts between lines, most often)
    point = st.one_of(at_ends, at_ends, st.integers(min_value=0, max_value=len(stream)))
    buffered = data.draw(point)  # the bytes that came with the first line
    first_buffer, rest = stream[:buffered], stream[buffered:]
    cuts = data.draw(st.lists(point, max_size=8))
    points = sorted({max(0, c - buffered) for c in cuts} | {len(rest)})
    chunks, start = [], 0
    for cut in points:
        if cut > start:
            chunks.append(rest[start:cut])
            start = cut
    assert _taken(first_buffer, chunks) == _read(first_buffer, chunks)


def test_lines_that_came_with_the_first_are_taken_before_more_arrives() -> None:
    response = _Arrivals([b'{"done":true}\n'])
    reply = OllamaReply(200, "application/x-ndjson", b"{}\n", b'{"n":2}\n', response)  # type: ignore[arg-type]
    assert reply.take_blocks() == b'{"n":2}\n' and not reply.taken_all
    assert reply.take_blocks() == b""
    response.arrive()
    assert reply.take_blocks() == b'{"done":true}\n' and reply.taken_all
    assert reply.take_blocks() is None
