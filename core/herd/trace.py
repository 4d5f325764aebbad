"""The record every request leaves behind."""

from __future__ import annotations

import msgspec

__all__ = ["ACTION_KIND", "AttemptRecord", "RequestTrace"]

#: The ``kind`` of a trace an operator's action left (a pull, a delete or an unload from the
#: dashboard): kept with the requests' traces, but no request; analytics and metrics skip it.
ACTION_KIND = "action"


class AttemptRecord(msgspec.Struct, frozen=True):
    """One try of a request on one node (Unix seconds; error empty on success)."""

    node: str
    started_at: float
    ended_at: float
    error: str = ""
    status: int = 0


class RequestTrace(msgspec.Struct, frozen=True, kw_only=True):
    """One request's story: who asked, which node served it, how long it took.

    Times are Unix seconds; durations are milliseconds. ``load_ms`` is the node's model
    load time (Ollama's ``load_duration``; large on a cold load); ``api_key`` names the
    client's API key when one was used (never the key itself). ``queue_ms`` is the time
    spent waiting in the router's queues; ``session`` is the conversation key the
    session-affinity signal follows; ``notes`` say what routing changed or noticed (a
    pinned ``num_ctx``, a substituted model, an auto-pull, an expected reload).
    """

    request_id: str
    api: str
    endpoint: str
    kind: str
    model: str
    served_model: str = ""
    node: str = ""
    status: str = "completed"
    http_status: int = 200
    error: str = ""
    received_at: float = 0.0
    first_byte_at: float = 0.0
    done_at: float = 0.0
    ttft_ms: float = 0.0
    latency_ms: float = 0.0
    queue_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_second: float = 0.0
    retries: int = 0
    excluded_nodes: list[str] = []
    scores: dict[str, dict[str, float]] = {}
    rejections: dict[str, str] = {}
    tags: list[str] = []
    client: str = ""
    stream: bool = False
    attempts: list[AttemptRecord] = []
    traceparent: str = ""
    load_ms: float = 0.0
    api_key: str = ""
    session: str = ""
    notes: list[str] = []
