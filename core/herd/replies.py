"""What a backend hands back: a node's answer opened up to its first byte, and its failures.

Re-exported by :mod:`herd.interfaces`, where plugin authors find them beside ``Backend``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

__all__ = ["NodeFailure", "StreamBroken", "TypedReply", "UpstreamReply", "WholeReply"]


class NodeFailure(Exception):
    """A node failed before its first byte reached the client.

    Args:
        message: What went wrong, for logs and the client's error.
        status: The node's HTTP status; 502 when it answered something unreadable (no
            sign that it is down); 0 when it never answered, which counts toward taking it
            offline (``fleet.failures_to_offline``).
        retryable: Whether another node may be tried.
        not_found: The node does not have the model (its 404).
    """

    def __init__(
        self, message: str, *, status: int = 0, retryable: bool = True, not_found: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.not_found = not_found


class StreamBroken(Exception):
    """A node's stream broke after its first byte reached the client."""


class UpstreamReply(ABC):
    """A node's answer, opened up to its first byte.

    Attributes:
        status: The node's HTTP status.
        content_type: The node's Content-Type.
        first: The first NDJSON line (streams) or the whole body.
        streaming: True when more lines follow through :meth:`rest`.
        decoded: The whole answer as an object in canonical (Ollama) form, when a backend
            built it from another protocol (see :class:`TypedReply`); None for bytes read
            from a node, which stay bytes until a route needs them translated.
    """

    status: int
    content_type: str
    first: bytes
    streaming: bool
    decoded: Any = None
    #: Set by the :meth:`take_blocks` call that took the stream's last bytes (its next
    #: call returns None), for a pump that asks again only then.
    taken_all: bool = False

    @abstractmethod
    def rest(self) -> AsyncIterator[bytes]:
        """The lines after the first, each ending in ``\\n``; raises on a broken stream."""

    async def rest_blocks(self) -> AsyncIterator[bytes]:
        """Like :meth:`rest`, but lines that arrived together may come as one block.

        A pass-through relay writes each block with one send, instead of one per line.
        Every block is one or more whole lines, each ending in ``\\n``, none blank.
        """
        async for line in self.rest():
            yield line

    def watch(self, on_ready: Callable[[], None] | None) -> bool:
        """Have ``on_ready`` called whenever :meth:`take_blocks` has something new.

        The optional fast way to relay a stream: ``on_ready`` runs in the node
        connection's own callback (no task woken per token), takes what came with
        :meth:`take_blocks` and writes it. ``None`` stops the calls. A reply that cannot
        returns False (the default), and the relay reads :meth:`rest_blocks` instead.
        """
        return False

    def take_blocks(self) -> bytes | None:
        """What :meth:`rest_blocks` would yield next, without waiting.

        Every whole line that arrived since the last call, in one block (``b""`` when no
        line is complete yet); ``None`` once the stream ended and everything was taken.
        The call that takes the last bytes sets :attr:`taken_all`: until then, a caller
        that got a block asks again only when ``on_ready`` is called (nothing more can
        have come). Raises :class:`StreamBroken` (after the lines that came before the
        break). Only for a reply whose :meth:`watch` said yes.
        """
        raise NotImplementedError

    @abstractmethod
    async def aclose(self) -> None:
        """Close the upstream connection (stops generation on the node)."""


class WholeReply(UpstreamReply):
    """A node's answer read whole (services do not stream), or one the router put together."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.status = status
        self.content_type = content_type
        self.first = body
        self.streaming = False

    async def rest(self) -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None


class TypedReply(UpstreamReply):
    """A whole answer a backend translated from another protocol, kept as an object.

    A route that renders another protocol (OpenAI, Anthropic, Responses) reads ``decoded``
    directly, so an answer from an OpenAI-compatible server is translated once on its way
    to an OpenAI client, with no Ollama JSON in between; ``first`` (the Ollama JSON an
    Ollama client receives) is encoded the first time something reads it.

    Args:
        decoded: The canonical answer: one of :mod:`herd.protocol.ollama_replies`' structs
            (``OllamaChatChunk``, ``OllamaGenerateChunk``, ``OllamaEmbedReply``) or a dict
            of the same fields.
        status: The HTTP status to answer with.
    """

    streaming = False

    def __init__(self, decoded: Any, status: int = 200) -> None:
        self.status = status
        self.content_type = "application/json"
        self.decoded = decoded
        self._first: bytes | None = None

    @property  # type: ignore[override]
    def first(self) -> bytes:
        if self._first is None:
            self._first = msgspec.json.encode(self.decoded)
        return self._first

    async def rest(self) -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None
