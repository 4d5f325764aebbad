"""The abstract classes plugins implement, and the data they see.

A plugin registers *classes* through the hooks in :mod:`herd.hookspecs`; the router
builds objects from them with their YAML ``Config``. Every class has a ``name`` (the
hyphenated string YAML uses) and a nested msgspec ``Config`` struct.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from herd.node_view import LoadedModel, ModelEntry, NodeReport, NodeView
from herd.replies import NodeFailure, StreamBroken, TypedReply, UpstreamReply, WholeReply
from herd.signal import Signal

if TYPE_CHECKING:
    import aiohttp

    from herd.settings import NodeConfig
    from herd.trace import RequestTrace

__all__ = [
    "Backend",
    "BackendContext",
    "FallbackPolicy",
    "InferenceRequest",
    "LoadedModel",
    "ModelEntry",
    "NodeFailure",
    "NodeReport",
    "NodeView",
    "Signal",
    "StreamBroken",
    "TraceSink",
    "TypedReply",
    "UpstreamReply",
    "WholeReply",
]


@dataclass(slots=True)
class InferenceRequest:
    """A request in canonical form, whatever protocol the client spoke.

    The canonical body is Ollama-shaped (the wire nodes speak); an OpenAI request is
    translated into it. ``raw_body`` holds the client's own bytes when they can be
    forwarded unchanged, which saves a re-encode on the hot path.

    Attributes:
        api: The client's protocol: ``ollama``, ``openai``, ``responses`` or ``anthropic``.
        endpoint: ``chat``, ``generate``, ``embed``, ``embeddings`` ...
        kind: Workload kind: ``text``, ``embed``, ``image`` or ``stt``.
        model: The model name as the client sent it.
        model_key: The normalised name of the model to serve (after aliases).
        body: The canonical (Ollama-shaped) request body a translating route built; empty
            when the client spoke Ollama (its bytes are ``raw_body``).
        stream: Whether the client asked for a stream.
        raw_body: The Ollama JSON the node receives, when known as bytes: the client's
            own (forwarded unchanged), or :attr:`shaped` once encoded.
        shaped: The body as the router changed it for this attempt's node (a pinned
            ``num_ctx``, a default ``keep_alive``, a substitute's name); None when the
            node receives the body unchanged.
        prompt_tokens: Estimated prompt tokens (text, history and images), for context-fit.
        num_predict: The client's ``options.num_predict``, if any.
        images: Number of images in the request (a vision model is needed).
        session: Conversation key (a ``session:`` tag, or a hash of the first messages).
        follow_up: The messages include an earlier reply: a later turn of a conversation.
        fallback_models: The client's own fallback list (body ``fallback_models``), in order.
        allow_fallback: False when the client forbids serving another model
            (``X-Herd-No-Fallback``).
        notes: What the router changed or noticed while routing (for the trace).
        api_key: The name of the client's API key (``auth.api_keys``), never the key.
        context_overflow: Set when the prompt is longer than the context the serving node
            runs the model with (the node keeps only the end of it): the
            ``X-Herd-Context`` header's value, e.g. ``truncated; prompt ~9000 tokens >
            num_ctx 4096``.
    """

    api: str
    endpoint: str
    kind: str
    model: str
    model_key: str
    body: dict[str, Any]
    stream: bool
    raw_body: bytes | None = None
    shaped: dict[str, Any] | None = None
    num_ctx: int | None = None
    tags: list[str] = field(default_factory=list)
    request_id: str = ""
    received_at: float = field(default_factory=time.time)
    client: str = ""
    traceparent: str = ""
    prompt_tokens: int = 0
    num_predict: int | None = None
    images: int = 0
    session: str = ""
    follow_up: bool = False
    fallback_models: list[str] = field(default_factory=list)
    allow_fallback: bool = True
    notes: list[str] = field(default_factory=list)
    api_key: str = ""
    context_overflow: str = ""

    def encoded_body(self) -> bytes:
        """The body to send to an Ollama node (the client's bytes when unchanged).

        Encoded once, on first use: a backend that speaks another protocol never asks.
        """
        if self.raw_body is None:
            self.raw_body = msgspec.json.encode(
                self.shaped if self.shaped is not None else self.body
            )
        return self.raw_body

    def node_body(self) -> dict[str, Any]:
        """The body this attempt's node receives, as a dict: for a backend that translates
        it into another protocol, without an encode and decode in between.

        The client's bytes are decoded (once) only when nothing else holds the body.
        """
        if self.shaped is not None:
            return self.shaped
        if not self.body and self.raw_body:
            self.body = _decode_object(self.raw_body)
        return self.body


_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


@dataclass(slots=True)
class BackendContext:
    """What the router hands every backend: its shared HTTP session and settings."""

    http: aiohttp.ClientSession
    connect_timeout: float = 5.0
    first_byte_timeout: float = 300.0
    read_timeout: float = 300.0
    poll_timeout: float = 3.0


class Backend(ABC):
    """Talks to one node of one type (Ollama, an OpenAI-compatible server, ...).

    Example:
        >>> class EchoBackend(Backend):
        ...     name = "echo"
        ...     capabilities = frozenset({"text"})
        ...     async def poll(self): ...
        ...     async def open(self, request): ...

    Model management (:meth:`pull`, :meth:`delete`, :meth:`copy`, :meth:`unload`) is
    optional: a backend whose nodes cannot do it keeps the defaults, which refuse.
    Replies are in herd's canonical form (Ollama's JSON), whatever the node speaks.
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset({"text"})
    #: True when the backend serves one of a node's services (``nodes[].services``), not
    #: the node itself: then an unreachable service must not mark the whole node offline
    #: (raise :class:`NodeFailure` with a non-zero status, e.g. 502).
    is_service: bool = False

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """Options under ``nodes[].options``."""

    def __init__(self, node: NodeConfig, config: Any, context: BackendContext) -> None:
        self.node = node
        self.config = config
        self.context = context

    @abstractmethod
    async def poll(self) -> NodeReport:
        """Read the node's version, models on disk and loaded models; raise if unreachable."""

    @abstractmethod
    async def open(self, request: InferenceRequest) -> UpstreamReply:
        """Send an inference request and wait for its first byte.

        Raises:
            NodeFailure: when the node fails before its first byte.
        """

    async def show(self, model: str, *, verbose: bool = False) -> UpstreamReply:
        """A model's metadata as the node describes it (Ollama's ``/api/show`` object:
        ``details``, ``model_info``, ``capabilities``, ...), whole, not a stream."""
        raise self._cannot("describe models")

    async def pull(self, model: str, *, stream: bool = True) -> UpstreamReply:
        """Download a model onto the node; a stream of progress objects when ``stream``
        (``status``, ``total``, ``completed``; ``{"status": "success"}`` last)."""
        raise self._cannot("pull models")

    async def delete(self, model: str) -> UpstreamReply:
        """Delete a model from the node's disk."""
        raise self._cannot("delete models")

    async def copy(self, source: str, destination: str) -> UpstreamReply:
        """Copy a model on the node under another name."""
        raise self._cannot("copy models")

    async def unload(self, model: str) -> UpstreamReply:
        """Unload a model from the node's memory now."""
        raise self._cannot("unload models")

    def _cannot(self, what: str) -> NodeFailure:
        return NodeFailure(
            f"node {self.node.name} ({self.name}) cannot {what}", status=501, retryable=False
        )

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (the shared session is the router's)."""


class FallbackPolicy(ABC):
    """Decides which node to try after a node failed before its first byte."""

    name: ClassVar[str]

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """Options under ``routing.fallback_options``."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @abstractmethod
    def next_node(
        self, request: InferenceRequest, ranked: list[NodeView], tried: list[str]
    ) -> NodeView | None:
        """The next node to try from the ranked candidates, or None to give up."""

    def substitute(
        self, request: InferenceRequest, nodes: Sequence[NodeView], same_category: bool
    ) -> str | None:
        """Another model to serve when the requested one is loaded nowhere (optional).

        Called only when the client allows a substitute. ``request.fallback_models`` (the
        client's own list) comes first; ``same_category`` is YAML ``routing.vram_fallback``.

        Returns:
            The normalised name of the model to serve instead, or None to serve the
            requested model (loading it if need be).
        """
        return None


class TraceSink(ABC):
    """Receives every finished request's trace. ``submit`` must not block."""

    name: ClassVar[str]

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """Options under ``plugins.options.<name>``."""

    def __init__(self, config: Any, data_dir: str = "") -> None:
        self.config = config
        self.data_dir = data_dir

    @abstractmethod
    def submit(self, trace: RequestTrace) -> None:
        """Take a trace; never block the event loop."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open files and start background writers."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Flush and close."""
