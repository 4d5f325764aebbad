"""An Ollama node's replies as the router reads them: a stream taken line by line or in
blocks of whole lines (:class:`OllamaReply`), and a stream joined into the one object a
client that asked for it whole expects (:func:`join_lines`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from herd.interfaces import StreamBroken, UpstreamReply
from herd.net import describe_network_error
from herd.node_http import NodeHttpError, NodeResponse

__all__ = ["OllamaReply", "join_lines"]

_BLANK_LINE = re.compile(rb"\n\n")
_decode_json = msgspec.json.Decoder(dict).decode
_encode = msgspec.json.encode


class OllamaReply(UpstreamReply):
    """An open Ollama response: the first line is read, the rest streams on demand."""

    __slots__ = ("_buffer", "_response", "taken_all")

    def __init__(
        self,
        status: int,
        content_type: str,
        first: bytes,
        buffer: bytes = b"",
        response: NodeResponse | None = None,
    ) -> None:
        self.status = status
        self.content_type = content_type
        self.first = first
        self.streaming = response is not None
        self._response = response
        self._buffer = buffer
        self.taken_all = False

    async def rest_blocks(self) -> AsyncIterator[bytes]:
        buffer = self._buffer
        response = self._response
        if response is None:
            return
        read = response.read  # silence between chunks is bounded by the client's read_timeout
        try:
            while True:
                block, buffer = _whole_lines(buffer)
                if block:
                    yield block
                chunk = await read()
                if not chunk:
                    break
                buffer += chunk
        except (NodeHttpError, TimeoutError, OSError) as exc:
            raise StreamBroken(describe_network_error(exc)) from exc
        finally:
            response.close()  # an abandoned stream's connection closes; a whole one is pooled
        if buffer.strip():
            yield buffer + b"\n"

    def watch(self, on_ready: Callable[[], None] | None) -> bool:
        if self._response is None:
            return False
        self._response.listener = on_ready
        return True

    def take_blocks(self) -> bytes | None:
        response = self._response
        if response is None:
            return None  # ended, and its last lines were taken
        try:
            chunk = response.take()
        except (NodeHttpError, TimeoutError, OSError) as exc:
            self._response = None
            self.taken_all = True
            response.listener = None
            response.close()
            raise StreamBroken(describe_network_error(exc)) from exc
        # This runs once per streamed token, so the usual cases are settled here, without
        # _whole_lines: nothing at all, and one whole line. (The buffer may hold whole
        # lines: those that came with the first.)
        complete, buffer = response.complete, self._buffer
        if not chunk:
            if not buffer and not complete:
                return b""
        else:
            buffer = buffer + chunk if buffer else chunk
            if not complete and buffer.find(b"\n") == len(buffer) - 1 and len(buffer) > 1:
                self._buffer = b""
                return buffer  # one whole line, not blank
        if complete:  # take() took everything: the rest is in the buffer
            self._response = None  # its connection is back in the pool already
            self.taken_all = True
            response.listener = None
            self._buffer = b""
            block, tail = _whole_lines(buffer)
            if tail.strip():
                block += tail + b"\n"
            return block or None
        block, self._buffer = _whole_lines(buffer)
        return block

    async def rest(self) -> AsyncIterator[bytes]:
        # rest_blocks' lines one at a time (each line of a block ends with a line end)
        blocks = self.rest_blocks()
        try:
            async for block in blocks:
                for line in block.split(b"\n")[:-1]:
                    yield line + b"\n"
        finally:
            await blocks.aclose()  # (at once: its connection closes when it ends)

    async def aclose(self) -> None:
        if self._response is not None:
            self._response.close()


def _whole_lines(buffer: bytes) -> tuple[bytes, bytes]:
    """The whole lines at the start of ``buffer`` (blank ones dropped), and the rest."""
    end = buffer.rfind(b"\n") + 1
    if not end:
        return b"", buffer
    block, rest = buffer[:end], buffer[end:]
    # (a regular expression: bytes.find scans for a two-byte needle at less than half the
    # speed, and this runs on every block of every stream)
    if _BLANK_LINE.search(block) is not None or block.startswith(b"\n"):
        block = b"".join(line + b"\n" for line in block.split(b"\n") if line)
    return block, rest


def join_lines(lines: list[bytes]) -> bytes:
    """Ollama's whole answer from the lines of its stream.

    The text of every line is joined (``response``, ``thinking``; a chat's
    ``message.content`` and ``message.thinking``), its tool calls and log probabilities
    gathered, everything else taken from the last line (``done``, the statistics,
    ``context``). A line with an in-band error is the answer. Raises ``msgspec.DecodeError``
    or ``ValidationError`` for a line that is not a JSON object.
    """
    found = []
    for line in lines:
        if line.strip():
            fields = _decode_json(line)
            if fields.get("error") is not None:
                return _encode(fields)
            found.append(fields)
    if not found:
        raise msgspec.DecodeError("no lines")
    whole = dict(found[-1])
    _join_text(found, whole)
    _gather(found, whole, "logprobs")  # (one entry per token, when asked for)
    messages = [fields["message"] for fields in found if isinstance(fields.get("message"), dict)]
    if messages:
        message = dict(messages[-1])
        _join_text(messages, message)
        _gather(messages, message, "tool_calls")  # (each arrives whole, in one line)
        roles = [m["role"] for m in messages if m.get("role")]
        if roles:
            message["role"] = roles[0]
        whole["message"] = message
    return _encode(whole)


def _gather(parts: list[dict[str, Any]], whole: dict[str, Any], name: str) -> None:
    items = [item for part in parts if isinstance(part.get(name), list) for item in part[name]]
    if items:
        whole[name] = items


def _join_text(parts: list[dict[str, Any]], whole: dict[str, Any]) -> None:
    for name in ("response", "content", "thinking"):
        texts = [part[name] for part in parts if isinstance(part.get(name), str)]
        if texts:
            whole[name] = "".join(texts)
