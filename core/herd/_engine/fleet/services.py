"""A node's other services: transcription, images and embeddings beside its Ollama.

A node has one *own* backend (its ``type``, usually ``ollama``) and any number of
services (YAML ``nodes[].services``, or a ``herd-node`` heartbeat), each served by a
backend of its own. Every service offers some capabilities (``transcribe``, ``image``,
``embed``) and some models; the node's :class:`~herd.interfaces.NodeView` learns them per
capability (``service_models``), so the scheduler's candidates for a transcription are
exactly the nodes whose services offer that model, and the request goes to that service's
backend (:meth:`herd._engine.fleet.registry.FleetNode.backend_for`).

Example (the router's YAML)::

    nodes:
      - name: studio
        url: http://10.0.0.5:11434
        services:
          - {type: openai-compat, url: "http://10.0.0.5:11436", models: [whisper-tiny.en]}
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from herd.interfaces import Backend, BackendContext, ModelEntry, NodeView
from herd.names import normalize_model_name
from herd.net import describe_network_error
from herd.settings import NodeConfig, ServiceConfig

__all__ = ["build_service", "poll_services", "refresh_view"]

log = logging.getLogger("herd.services")

#: Workloads a service can offer. ``text`` stays with the node's own backend.
SERVICE_CAPABILITIES = frozenset({"embed", "image", "transcribe"})


@dataclass(slots=True)
class NodeService:
    """One service of a node: its configuration, its backend and what it serves.

    Attributes:
        config: The service as configured (YAML or heartbeat).
        backend: The backend object that talks to it.
        capabilities: What it serves (the configured list, else all its type offers).
        declared: Models the configuration names (served before any poll).
        polled: Models its last poll reported, by capability.
        online: False after a failed poll (its models are then not offered).
    """

    config: ServiceConfig
    backend: Backend
    capabilities: frozenset[str]
    declared: dict[str, ModelEntry] = field(default_factory=dict)
    polled: dict[str, dict[str, ModelEntry]] = field(default_factory=dict)
    online: bool = True
    last_error: str = ""

    def models(self) -> dict[str, dict[str, ModelEntry]]:
        """The models it offers now, by capability (empty while it is offline)."""
        if not self.online:
            return {}
        out: dict[str, dict[str, ModelEntry]] = {
            cap: dict(self.declared) for cap in self.capabilities
        }
        for capability, entries in self.polled.items():
            out.setdefault(capability, {}).update(entries)
        return {capability: entries for capability, entries in out.items() if entries}


def build_service(
    node: NodeConfig,
    service: ServiceConfig,
    backend_classes: Mapping[str, type[Backend]],
    context: BackendContext,
) -> NodeService:
    """Make the backend for one of ``node``'s services.

    Raises:
        ValueError: an unknown type, or a capability its type does not offer.
    """
    cls = backend_classes.get(service.type)
    where = f"node {node.name!r}, service {service.url}"
    if cls is None:
        known = ", ".join(sorted(backend_classes)) or "none"
        raise ValueError(f"{where}: unknown type {service.type!r} (known: {known})")
    offered = frozenset(cls.capabilities)
    wanted = frozenset(service.capabilities) or (offered & SERVICE_CAPABILITIES) or offered
    extra = wanted - offered
    if extra:
        raise ValueError(
            f"{where}: type {service.type!r} cannot serve {', '.join(sorted(extra))} "
            f"(it serves {', '.join(sorted(offered))})"
        )
    try:
        config = msgspec.convert(service.options, cls.Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{where}: options: {exc}") from None
    as_node = NodeConfig(
        name=node.name, url=service.url, type=service.type, options=service.options
    )
    backend = cls(as_node, config, context)
    backend.is_service = True
    declared = {}
    for name in service.models:
        key = normalize_model_name(name)
        declared[key] = ModelEntry(name=name, key=key, raw={"name": name, "model": name})
    return NodeService(config=service, backend=backend, capabilities=wanted, declared=declared)


def refresh_view(view: NodeView, own: frozenset[str], services: Sequence[NodeService]) -> None:
    """Recompute a view's capabilities and service models from its services."""
    by_capability: dict[str, dict[str, ModelEntry]] = {}
    capabilities = set(own)
    for service in services:
        if not service.online:
            continue
        capabilities |= service.capabilities
        for capability, entries in service.models().items():
            by_capability.setdefault(capability, {}).update(entries)
    view.primary_capabilities = own
    view.capabilities = frozenset(capabilities)
    view.service_models = by_capability


async def poll_services(
    view: NodeView, own: frozenset[str], services: Sequence[NodeService]
) -> None:
    """Poll every service of a node at once and update its view; never raises."""
    await asyncio.gather(*(_poll_one(view, service) for service in services))
    refresh_view(view, own, services)


async def _poll_one(view: NodeView, service: NodeService) -> None:
    try:
        report = await service.backend.poll()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        error = describe_network_error(exc)
        if service.online:
            log.warning(
                "node %s: service %s is not answering: %s", view.name, service.config.url, error
            )
        service.online, service.last_error = False, error
        return
    if not service.online:
        log.info("node %s: service %s answers again", view.name, service.config.url)
    service.online, service.last_error = True, ""
    polled: dict[str, dict[str, ModelEntry]] = {}
    for entry in report.models:
        reported = set(entry.capabilities)
        capabilities = reported & service.capabilities if reported else service.capabilities
        for capability in capabilities:
            polled.setdefault(capability, {})[entry.key] = entry
    service.polled = polled
