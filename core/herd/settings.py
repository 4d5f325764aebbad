"""The router's configuration schema: every YAML key, as msgspec Structs.

Loading (YAML, environment, flags, error messages) lives in the engine; this module is
the public shape plugins read (``settings.routing``, ``settings.auth``, ...).

Every key has a default, so herd starts with no file at all. A key can be set in
YAML, overridden by an environment variable ``HERD_<KEY>`` (nested keys joined by
a double underscore, e.g. ``HERD_ROUTING__MAX_RETRIES=3``; values are parsed as
YAML, so ``HERD_NODES='[{name: a, url: "http://127.0.0.1:11434"}]'`` works), and
the common ones by CLI flags (``--host``, ``--port``, ``--config``).
An unknown key or a wrong type is a :class:`ConfigError` that names the key, its
line in the file and what the key means.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ApiKeySettings",
    "AuthSettings",
    "ClusterSettings",
    "FleetSettings",
    "LimitSettings",
    "NodeConfig",
    "OpenAISettings",
    "PluginSettings",
    "RoutingSettings",
    "ServiceConfig",
    "Settings",
    "WorkloadSettings",
]


def _doc(text: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **constraints)


class ServiceConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A non-Ollama service a node offers: transcription, images or embeddings."""

    type: Annotated[str, _doc("Backend type of the service, e.g. openai-compat.")]
    url: Annotated[str, _doc("Base URL of the service, e.g. http://10.0.0.5:11436.")]
    models: Annotated[
        list[str], _doc("Models the service serves (added to what its model list says).")
    ] = []
    capabilities: Annotated[
        list[str],
        _doc("Workloads it serves: embed, image, transcribe (default: all its type offers)."),
    ] = []
    options: Annotated[
        dict[str, Any], _doc("Options for the service's backend type (its Config struct).")
    ] = {}


class NodeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A node the router polls itself (agentless): an Ollama server or another backend."""

    name: Annotated[str, _doc("Unique node name, shown in headers, traces and the dashboard.")]
    url: Annotated[str, _doc("Base URL of the node's server, e.g. http://10.0.0.5:11434.")]
    type: Annotated[str, _doc("Backend type (a registered backend's name).")] = "ollama"
    options: Annotated[
        dict[str, Any], _doc("Options for the backend type (its Config struct).")
    ] = {}
    num_parallel: Annotated[
        int | None,
        _doc("Requests the node serves at once per model (Ollama's OLLAMA_NUM_PARALLEL)."),
    ] = None
    tags: Annotated[list[str], _doc("Labels for the node, e.g. [gpu, big].")] = []
    services: Annotated[
        list[ServiceConfig],
        _doc("Other services on the node (transcription, images, embeddings), each its backend."),
    ] = []


class FleetSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How the router watches its nodes."""

    poll_interval: Annotated[
        float, _doc("Seconds between polls of each node's /api/ps, /api/tags, /api/version.", gt=0)
    ] = 5.0
    poll_timeout: Annotated[
        float, _doc("Seconds a poll may take before the node counts as not answering.", gt=0)
    ] = 3.0
    discover_local: Annotated[
        bool,
        _doc("With no nodes configured, use the Ollama at http://127.0.0.1:11434 if it answers."),
    ] = True
    degraded_after: Annotated[
        int,
        _doc(
            "Missed agent heartbeats before a node is degraded (served only as a last resort).",
            ge=1,
        ),
    ] = 3
    offline_after: Annotated[
        int, _doc("Missed agent heartbeats before a node is offline.", ge=1)
    ] = 6
    failures_to_offline: Annotated[
        int,
        _doc(
            "Requests that fail to reach a node within failure_window_s before it is "
            "offline (each failure also makes the router poll it at once).",
            ge=1,
        ),
    ] = 3
    failure_window_s: Annotated[
        float, _doc("Seconds over which failed requests to a node are counted.", gt=0)
    ] = 30.0


class ApiKeySettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One client API key; its name tags the key's requests (``key:<name>``)."""

    name: Annotated[
        str,
        _doc(
            "Name of the key, shown in traces and as the tag key:<name> (never the key).",
            pattern=r"^[A-Za-z0-9_.@+=#~-]{1,64}$",
        ),
    ]
    key: Annotated[
        str,
        _doc(
            "The secret clients send as Authorization: Bearer <key> (8+ characters).",
            min_length=8,
        ),
    ]


#: Pages that may call the client API from a browser unless told otherwise: this machine's
#: own (any port) and desktop-app schemes, the same list Ollama allows by default.
DEFAULT_ALLOWED_ORIGINS = (
    "http://localhost",
    "https://localhost",
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1",
    "https://127.0.0.1",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://0.0.0.0",
    "https://0.0.0.0",
    "http://0.0.0.0:*",
    "https://0.0.0.0:*",
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)
_ORIGIN_PATTERN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s?#]+$", re.IGNORECASE)


class AuthSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Who may do what: node agents, administrators, API clients."""

    node_token: Annotated[
        str,
        _doc("Token herd-node agents must present to register (also HERD_NODE_TOKEN)."),
    ] = ""
    admin_key: Annotated[
        str, _doc("Key for the admin endpoints (fleet drain/undrain); empty = loopback only.")
    ] = ""
    api_keys: Annotated[
        list[ApiKeySettings],
        _doc("Client API keys; when any is set, inference and admin routes need one."),
    ] = []
    allowed_origins: Annotated[
        list[str],
        _doc(
            "Web origins (besides herd's own) whose pages may call the client API from a "
            "browser (CORS), e.g. http://192.168.1.5:3000; * matches any run of characters "
            "in a host or port, a lone * allows every site, and null allows sandboxed pages."
        ),
    ] = msgspec.field(default_factory=lambda: list(DEFAULT_ALLOWED_ORIGINS))

    def __post_init__(self) -> None:
        for origin in self.allowed_origins:
            # "null": what browsers send for sandboxed frames and some file:// pages
            if origin not in ("*", "null") and not _ORIGIN_PATTERN.match(origin):
                raise ValueError(
                    f"auth.allowed_origins: {origin!r} is not an origin: write "
                    "scheme://host or scheme://host:port, with no path (e.g. "
                    "http://192.168.1.5:3000, http://localhost:*), a lone * or null"
                )
        names = [k.name for k in self.api_keys]
        keys = [k.key for k in self.api_keys]
        if len(set(names)) != len(names):
            raise ValueError("auth.api_keys: two keys have the same name")
        if len(set(keys)) != len(keys):
            raise ValueError("auth.api_keys: two entries have the same key")


class RoutingSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How a request finds its node."""

    max_retries: Annotated[
        int, _doc("Other nodes tried when a node fails before the first byte.", ge=0, le=10)
    ] = 2
    connect_timeout: Annotated[
        float, _doc("Seconds to connect to a node before trying the next one.", gt=0)
    ] = 5.0
    first_byte_timeout: Annotated[
        float,
        _doc("Seconds to wait for a node's first byte (includes a cold model load).", gt=0),
    ] = 300.0
    read_timeout: Annotated[
        float, _doc("Seconds of silence allowed between two chunks of a stream.", gt=0)
    ] = 300.0
    fallback: Annotated[str, _doc("Name of the fallback policy used after a failure.")] = (
        "next-best"
    )
    aliases: Annotated[
        dict[str, str], _doc("Model aliases: the name a client sends -> the model served.")
    ] = {}
    signals: Annotated[
        dict[str, dict[str, Any]],
        _doc("Per-signal options by signal name, e.g. {thermal: {weight: 3}}."),
    ] = {}
    fallback_options: Annotated[
        dict[str, Any], _doc("Options of the fallback policy (its Config struct).")
    ] = {}
    retry_backoff_s: Annotated[
        float,
        _doc("Pause before a retry on another node; doubles per further retry (max 1 s).", ge=0),
    ] = 0.05
    default_num_parallel: Annotated[
        int,
        _doc(
            "Requests a node serves at once per model when neither its agent nor "
            "nodes[].num_parallel says (shown as 'assumed' in /fleet/queue).",
            ge=1,
        ),
    ] = 4
    adaptive_concurrency: Annotated[
        bool,
        _doc(
            "Learn how many requests a node serves at once per model from its latency "
            "(time to first token, time per token) when neither its agent nor "
            "nodes[].num_parallel says; starts from default_num_parallel ('learned' in "
            "/fleet/queue)."
        ),
    ] = True
    max_queue_depth: Annotated[
        int,
        _doc("Requests that may wait in one node's queue for one model; more go elsewhere.", ge=0),
    ] = 64
    hold_timeout_s: Annotated[
        float,
        _doc(
            "Seconds a request no queue can take waits for room, then 503 with Retry-After.",
            ge=0,
        ),
    ] = 30.0
    max_in_flight_per_client: Annotated[
        int,
        _doc(
            "Requests one client (API key, else IP address) may have queued or in flight; "
            "more get 429 with Retry-After. 0 = no cap.",
            ge=0,
        ),
    ] = 0
    stale_timeout_s: Annotated[
        float,
        _doc(
            "Seconds a stream may make no progress before the reaper fails it and frees its slot.",
            gt=0,
        ),
    ] = 600.0
    context_protection: Annotated[
        Literal["pin", "strip", "warn", "passthrough"],
        _doc("How num_ctx is handled so models do not reload: pin, strip, warn, passthrough."),
    ] = "pin"
    keep_alive: Annotated[
        dict[str, float | str],
        _doc("Default keep_alive per model when the client sends none; '*' for all models."),
    ] = {}
    vram_fallback: Annotated[
        bool,
        _doc(
            "Serve a loaded model of the same category when the requested one would need a "
            "long cold load (never for images without vision; X-Herd-No-Fallback opts out)."
        ),
    ] = False
    auto_pull: Annotated[
        bool, _doc("Pull a model no node has onto the best node with room, then serve it.")
    ] = False
    auto_pull_timeout_s: Annotated[
        float, _doc("Seconds a request waits for an auto-pull before it fails.", gt=0)
    ] = 600.0


class LimitSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Limits that protect the router."""

    max_body_bytes: Annotated[
        int, _doc("Largest request body accepted; larger bodies get 413.", gt=0)
    ] = 64 * 1024 * 1024
    max_header_bytes: Annotated[
        int, _doc("Largest request line plus headers; larger ones get 431.", ge=4096)
    ] = 64 * 1024
    header_timeout_s: Annotated[
        float, _doc("Seconds a connection may take to send its request headers.", gt=0)
    ] = 30.0
    body_timeout_s: Annotated[
        float, _doc("Seconds a request body may go without a byte before a 408.", gt=0)
    ] = 30.0
    keep_alive_s: Annotated[
        float,
        _doc(
            "Seconds an idle client connection is kept open for its next request: longer "
            "than clients keep theirs, so none sends on a connection the router is closing.",
            gt=0,
        ),
    ] = 120.0
    shutdown_grace_s: Annotated[
        float,
        _doc(
            "Seconds a stop (SIGTERM, Ctrl-C) lets requests in flight finish; past it, a "
            "request still waiting for a node gets 503 and a stream ends with an error.",
            ge=0,
        ),
    ] = 10.0


class OpenAISettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How the OpenAI-compatible ``/v1`` API answers."""

    reasoning_field: Annotated[
        Literal["reasoning_content", "reasoning", "drop"],
        _doc(
            "Where a thinking model's reasoning goes in /v1 replies: reasoning_content, "
            "reasoning (Ollama's name) or drop; never into content."
        ),
    ] = "reasoning_content"


class WorkloadSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Image generation, speech-to-text and embeddings (read per request)."""

    image_generation: Annotated[
        bool, _doc("Serve /api/generate-image and /v1/images/generations (off: 503).")
    ] = False
    transcription: Annotated[
        bool, _doc("Serve /api/transcribe and /v1/audio/transcriptions (off: 503).")
    ] = False
    max_audio_bytes: Annotated[
        int, _doc("Largest audio file accepted for transcription; larger gets 413.", gt=0)
    ] = 25 * 1024 * 1024
    image_timeout: Annotated[
        float, _doc("Seconds an image generation may take; then it is cancelled on the node.", gt=0)
    ] = 300.0
    transcription_timeout: Annotated[
        float, _doc("Seconds a transcription may take; then it is cancelled on the node.", gt=0)
    ] = 300.0
    embed_batch_size: Annotated[
        int, _doc("Most inputs sent to a node in one embeddings call; more are split.", ge=1)
    ] = 64


class PluginSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Which plugins run."""

    disable: Annotated[
        list[str], _doc("Plugin names not to load (also HERD_DISABLE_PLUGINS, comma-separated).")
    ] = []
    load: Annotated[
        list[str], _doc("Extra plugin modules to import and register, e.g. herd_contrib.x.")
    ] = []
    options: Annotated[
        dict[str, dict[str, Any]], _doc("Options by plugin name, passed to that plugin.")
    ] = {}


class ClusterSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Several routers in front of one fleet, sharing state through Redis or Valkey."""

    redis_url: Annotated[
        str,
        _doc(
            "Redis/Valkey URL shared by every replica, e.g. redis://:PASSWORD@10.0.0.9:6379/0 "
            "(rediss:// for TLS). Empty: this router runs alone."
        ),
    ] = ""
    key_prefix: Annotated[
        str, _doc("Prefix of every key and channel herd uses in Redis (one fleet per prefix).")
    ] = "herd:"
    lease_ttl_s: Annotated[
        float,
        _doc("Seconds a request's slot lease lives unless its replica renews it.", gt=0),
    ] = 10.0
    replica_id: Annotated[
        str, _doc("This replica's name in Redis (default: host name, process id and a random tag).")
    ] = ""
    timeout_s: Annotated[
        float,
        _doc("Seconds a Redis call may take before this replica runs on local state.", gt=0),
    ] = 0.5
    retry_s: Annotated[
        float, _doc("Seconds between reconnection attempts while Redis is unreachable.", gt=0)
    ] = 1.0


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The whole router configuration (the top level of the YAML file)."""

    host: Annotated[str, _doc("Address the router listens on.")] = "127.0.0.1"
    port: Annotated[int, _doc("Port the router listens on.", ge=0, le=65535)] = 11435
    data_dir: Annotated[str, _doc("Directory for the router's files (traces, settings).")] = (
        "~/.herd"
    )
    log_level: Annotated[str, _doc("Logging level: debug, info, warning or error.")] = "info"
    log_format: Annotated[
        Literal["text", "json"], _doc("Log lines as text, or one JSON object per line.")
    ] = "text"
    access_log: Annotated[
        bool, _doc("Log one line per HTTP request (method, path, status, time, node).")
    ] = False
    nodes: Annotated[list[NodeConfig], _doc("Nodes the router polls itself (agentless).")] = []
    fleet: Annotated[FleetSettings, _doc("How nodes are watched.")] = FleetSettings()
    routing: Annotated[RoutingSettings, _doc("How requests are routed and retried.")] = (
        RoutingSettings()
    )
    limits: Annotated[LimitSettings, _doc("Limits that protect the router.")] = LimitSettings()
    plugins: Annotated[PluginSettings, _doc("Which plugins run, and their options.")] = (
        PluginSettings()
    )
    workloads: Annotated[
        WorkloadSettings, _doc("Image generation and transcription toggles, limits, batching.")
    ] = WorkloadSettings()
    auth: Annotated[AuthSettings, _doc("Tokens and keys: node agents, admins, API clients.")] = (
        AuthSettings()
    )
    openai: Annotated[OpenAISettings, _doc("How the OpenAI-compatible /v1 API answers.")] = (
        OpenAISettings()
    )
    cluster: Annotated[
        ClusterSettings, _doc("Several replicas sharing state through Redis (off by default).")
    ] = ClusterSettings()

    @property
    def data_path(self) -> Path:
        """``data_dir`` with ``~`` expanded."""
        return Path(self.data_dir).expanduser()
