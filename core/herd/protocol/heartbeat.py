"""The heartbeat wire format, shared by ``herd-node`` and the router.

Only msgspec is imported here, so the agent never pulls in the router's web stack.

Compatibility rules (they are what lets a router and its agents upgrade one at a time):

- ``payload_version`` says which format the agent speaks; a heartbeat without it is
  version 1. The router accepts every version: it reads the fields it knows.
- Fields are only ever added, each with a default; they are never renamed, retyped or
  given a new meaning without bumping :data:`PAYLOAD_VERSION`.
- Unknown fields are ignored (no ``forbid_unknown_fields``), so a newer agent's extras
  do not trouble an older router, and a newer router's reply does not trouble an agent.
- ``0``, ``""``, ``None`` and empty lists mean "unknown", never "none at all".
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

__all__ = [
    "PAYLOAD_VERSION",
    "DiskModel",
    "GpuInfo",
    "Heartbeat",
    "HeartbeatReply",
    "MachineInfo",
    "RunningModel",
    "decode_heartbeat",
    "decode_reply",
    "encode",
    "models_digest",
]

#: The heartbeat format this code writes.
PAYLOAD_VERSION = 1


class GpuInfo(msgspec.Struct, kw_only=True):
    """One GPU as the agent sees it (NVIDIA through pynvml)."""

    index: int = 0
    name: str = ""
    vram_total: int = 0
    vram_used: int = 0
    temperature: float | None = None
    utilization: float | None = None


class MachineInfo(msgspec.Struct, kw_only=True):
    """What only the machine knows: CPU, memory, disk, GPUs.

    Attributes:
        cpu_percent: Utilisation over all cores since the last heartbeat, 0..100.
        ram_pressure: Share of time tasks stalled on memory (Linux PSI ``some avg10``,
            0..100), or None where the system does not say.
        disk_free: Free bytes on the disk that holds Ollama's models.
    """

    cpu_count: int = 0
    cpu_percent: float = 0.0
    ram_total: int = 0
    ram_available: int = 0
    ram_pressure: float | None = None
    swap_used: int = 0
    disk_total: int = 0
    disk_free: int = 0
    gpus: list[GpuInfo] = []


class DiskModel(msgspec.Struct, kw_only=True):
    """A model on the node's disk (an ``/api/tags`` entry)."""

    name: str
    size: int = 0
    digest: str = ""
    modified_at: str = ""
    details: dict[str, Any] = {}
    capabilities: list[str] = []


class RunningModel(msgspec.Struct, kw_only=True):
    """A model loaded on the node (an ``/api/ps`` entry)."""

    name: str
    size: int = 0
    size_vram: int = 0
    context_length: int = 0
    expires_at: str = ""
    digest: str = ""
    details: dict[str, Any] = {}


class ServiceInfo(msgspec.Struct, kw_only=True):
    """A non-Ollama service the node offers (speech-to-text, embeddings, images).

    Attributes:
        url: Where the router reaches it, stated by the agent like ``ollama_url``.
        type: The router's backend type for it (``openai-compat`` for herd's own).
        models: The models it serves.
        capabilities: ``transcribe``, ``embed``, ``image``.
    """

    url: str
    type: str = "openai-compat"
    models: list[str] = []
    capabilities: list[str] = []


class Heartbeat(msgspec.Struct, kw_only=True):
    """``POST /fleet/heartbeat``: one agent's report about its node.

    Attributes:
        name: The node's name (the agent's ``--name``, by default the host name).
        ollama_url: The URL the router should use to reach this node's Ollama; the agent
            states it, the router never guesses it from the connection's address.
        agent_id: Random per agent process; tells two agents claiming one name apart.
        interval: Seconds between this agent's heartbeats; the router counts missed
            heartbeats against it.
        ollama_error: Why the agent could not read Ollama ("" when it could).
        models: Models on disk, or None when unchanged since the router last
            acknowledged ``models_digest`` (the router asks again when it lost them).
        models_digest: Fingerprint of the models list (see :func:`models_digest`).
        num_parallel: Ollama's ``OLLAMA_NUM_PARALLEL`` when the agent knows it (0 = unknown).
        draining: The agent is stopping: send no new requests; in-flight ones finish.
        services: The node's non-Ollama services, or None when the agent runs none (the
            router then keeps the YAML ``nodes[].services``).
    """

    payload_version: int = 1
    name: str
    ollama_url: str
    agent_id: str = ""
    agent_version: str = ""
    interval: float = 5.0
    seq: int = 0
    ollama_version: str = ""
    ollama_error: str = ""
    models: list[DiskModel] | None = None
    models_digest: str = ""
    loaded: list[RunningModel] = []
    num_parallel: int = 0
    max_loaded_models: int = 0
    machine: MachineInfo = msgspec.field(default_factory=MachineInfo)
    draining: bool = False
    services: list[ServiceInfo] | None = None


class HeartbeatReply(msgspec.Struct, kw_only=True):
    """The router's answer to a heartbeat.

    Attributes:
        node: The name the router files the heartbeat under (a YAML node's name when
            the agent's URL matched one).
        models_digest: The models fingerprint the router holds for the node; when it
            differs from the agent's, the agent sends its full models list again.
        draining: The node is draining (by the agent's request or an administrator's).
    """

    accepted: bool = True
    node: str = ""
    models_digest: str = ""
    draining: bool = False
    router_version: str = ""
    payload_version: int = PAYLOAD_VERSION


encode = msgspec.json.Encoder().encode
_heartbeat_decoder = msgspec.json.Decoder(Heartbeat)
_reply_decoder = msgspec.json.Decoder(HeartbeatReply)


def decode_heartbeat(body: bytes) -> Heartbeat:
    """Decode a heartbeat from any agent version.

    Raises:
        msgspec.DecodeError: not JSON, or a known field has the wrong type.
    """
    return _heartbeat_decoder.decode(body)


def decode_reply(body: bytes) -> HeartbeatReply:
    """Decode the router's reply to a heartbeat."""
    return _reply_decoder.decode(body)


def models_digest(models: list[DiskModel]) -> str:
    """A short fingerprint of a models list; equal lists give equal digests, in any order."""
    ordered = sorted(models, key=lambda m: m.name)
    return hashlib.sha256(encode(ordered)).hexdigest()[:16]
