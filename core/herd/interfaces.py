"""The abstract classes plugins implement, and the data they see.

A plugin registers *classes* through the hooks in :mod:`herd.hookspecs`; the router
builds objects from them with their YAML ``Config``. Every class has a ``name`` (the
hyphenated string YAML uses) and a nested msgspec ``Config`` struct.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

if TYPE_CHECKING:
    import aiohttp

    from herd.config import NodeConfig
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
    "UpstreamReply",
]


class ModelEntry(msgspec.Struct):
    """A model on a node's disk, as its ``/api/tags`` reports it.

    Attributes:
        name: Display name as the node reports it (``llama3.2:latest``).
        key: Normalised name used for matching (see :func:`herd.names.normalize_model_name`).
        size: Bytes on disk.
        raw: The node's entry, unchanged, for replies that pass it through.
    """

    name: str
    key: str
    size: int = 0
    digest: str = ""
    details: dict[str, Any] = {}
    capabilities: list[str] = []
    raw: dict[str, Any] = {}


class LoadedModel(msgspec.Struct):
    """A model loaded on a node, as its ``/api/ps`` reports it."""

    name: str
    key: str
    size: int = 0
    size_vram: int = 0
    context_length: int = 0
    expires_at: str = ""
    raw: dict[str, Any] = {}


class NodeReport(msgspec.Struct):
    """What one poll of a node found out."""

    version: str = ""
    models: list[ModelEntry] = []
    loaded: list[LoadedModel] = []


@dataclass(slots=True)
class NodeView:
    """The router's picture of one node, read by signals and the scheduler.

    Signals read it synchronously (no ``await`` while scoring), so what they see is a
    consistent snapshot of the event loop's state.

    Attributes:
        name: The node's configured name.
        url: Base URL of the node's server.
        status: ``online``, ``degraded`` (missed heartbeats), ``offline`` or ``unknown``
            (not polled yet).
        models: Models on disk, by normalised name.
        loaded: Models in memory, by normalised name.
        in_flight: Requests being served by this node through this router.
        in_flight_by_model: The same, per normalised model name.
        num_parallel: Requests the node serves at once per model (0 = unknown).
        vram_total: Bytes of GPU memory over all GPUs (0 = unknown; agent-reported).
        draining: The node takes no new requests; in-flight ones finish.
    """

    name: str
    url: str
    type: str = "ollama"
    status: str = "unknown"
    last_error: str = ""
    last_seen: float = 0.0
    version: str = ""
    models: dict[str, ModelEntry] = field(default_factory=dict)
    loaded: dict[str, LoadedModel] = field(default_factory=dict)
    in_flight: int = 0
    in_flight_by_model: dict[str, int] = field(default_factory=dict)
    capabilities: frozenset[str] = frozenset()
    # What only the machine knows (reported by herd-node; 0 / empty when unknown):
    num_parallel: int = 0
    max_loaded_models: int = 0
    ram_total: int = 0
    ram_available: int = 0
    vram_total: int = 0
    vram_used: int = 0
    cpu_count: int = 0
    cpu_percent: float = 0.0
    gpus: list[dict[str, Any]] = field(default_factory=list)
    agent: bool = False
    draining: bool = False
    tags: list[str] = field(default_factory=list)

    @property
    def online(self) -> bool:
        """True when the last poll or request reached the node."""
        return self.status == "online"

    def has_model(self, key: str) -> bool:
        """True when the node has the model (by normalised name) on disk or loaded."""
        return key in self.models or key in self.loaded


@dataclass(slots=True)
class InferenceRequest:
    """A request in canonical form, whatever protocol the client spoke.

    The canonical body is Ollama-shaped (the wire nodes speak); an OpenAI request is
    translated into it. ``raw_body`` holds the client's own bytes when they can be
    forwarded unchanged, which saves a re-encode on the hot path.

    Attributes:
        api: The client's protocol: ``ollama`` or ``openai``.
        endpoint: ``chat``, ``generate``, ``embed``, ``embeddings`` ...
        kind: Workload kind: ``text``, ``embed``, ``image`` or ``stt``.
        model: The model name as the client sent it.
        model_key: The normalised name of the model to serve (after aliases).
        body: The canonical (Ollama-shaped) request body.
        stream: Whether the client asked for a stream.
    """

    api: str
    endpoint: str
    kind: str
    model: str
    model_key: str
    body: dict[str, Any]
    stream: bool
    raw_body: bytes | None = None
    num_ctx: int | None = None
    tags: list[str] = field(default_factory=list)
    request_id: str = ""
    received_at: float = field(default_factory=time.time)
    client: str = ""
    traceparent: str = ""

    def encoded_body(self) -> bytes:
        """The body to send to an Ollama node (the client's bytes when unchanged)."""
        if self.raw_body is None:
            self.raw_body = msgspec.json.encode(self.body)
        return self.raw_body


class NodeFailure(Exception):
    """A node failed before its first byte reached the client.

    Args:
        message: What went wrong, for logs and the client's error.
        status: The node's HTTP status, or 0 when it never answered.
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
    """

    status: int
    content_type: str
    first: bytes
    streaming: bool

    @abstractmethod
    def rest(self) -> AsyncIterator[bytes]:
        """The lines after the first, each ending in ``\\n``; raises on a broken stream."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the upstream connection (stops generation on the node)."""


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
        ...     async def call(self, method, path, body=None): ...
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset({"text"})

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

    @abstractmethod
    async def call(self, method: str, path: str, body: bytes | None = None) -> UpstreamReply:
        """A control request (show, pull, delete, copy) passed to the node as it is."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (the shared session is the router's)."""


class Signal(ABC):
    """One scoring signal: rejects nodes that cannot serve, scores the rest in [0, 1].

    Pure and synchronous over a :class:`NodeView`: no I/O.

    Example:
        >>> class PreferNamedSignal(Signal):
        ...     name = "prefer-named"
        ...     def score(self, request, node):
        ...         return 1.0 if node.name == "gpu-box" else 0.0
    """

    name: ClassVar[str]

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """Options under ``routing.signals.<name>``."""

        weight: float = 1.0

    def __init__(self, config: Any) -> None:
        self.config = config
        self.weight = float(getattr(config, "weight", 1.0))

    def reject(self, request: InferenceRequest, node: NodeView) -> str | None:
        """A reason this node cannot serve the request, or None."""
        return None

    @abstractmethod
    def score(self, request: InferenceRequest, node: NodeView) -> float:
        """How good this node is for the request, from 0 (worst) to 1 (best)."""


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
