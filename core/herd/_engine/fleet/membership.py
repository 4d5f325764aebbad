"""Fleet membership: agents' heartbeats, liveness, node tokens and draining.

A node can come from the YAML file (the router polls it), from a ``herd-node`` agent
(it heartbeats), or from both: then the YAML gives the name, the URL and the static
options (``num_parallel``, ``tags``) and the agent's data replaces polling while its
heartbeats are current.

Liveness of agent nodes is counted in missed heartbeats against the agent's own
interval: ``fleet.degraded_after`` (3) makes a node degraded, served only when no healthy
node can serve; ``fleet.offline_after`` (6) makes it offline. A YAML node whose agent
goes quiet is polled again instead. Without ``auth.node_token`` an agent is not trusted to
speak for a YAML node: its heartbeats add the machine's facts, but the node's state, models
and draining still come from the router's own polls (so a stray heartbeat cannot take a
configured node offline or steer its traffic). A draining node (its agent is stopping, or an
administrator drained it) gets no new requests; its in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
from herd_node.settings import check_http_url

import herd
from herd._engine.audit import audit
from herd._engine.fleet.reported import loaded_model, model_entry
from herd.interfaces import NodeReport, NodeView
from herd.net import is_loopback_host, without_credentials
from herd.protocol.heartbeat import Heartbeat, HeartbeatReply, MachineInfo
from herd.settings import NodeConfig, ServiceConfig, Settings

if TYPE_CHECKING:
    from herd._engine.fleet.registry import Fleet, FleetNode

__all__ = ["AgentRecord", "Membership", "MembershipError", "bearer_secret", "secret_matches"]

log = logging.getLogger("herd.membership")

_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MIN_INTERVAL = 0.05
MAX_INTERVAL = 600.0


class MembershipError(Exception):
    """A heartbeat the router will not take; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class AgentRecord:
    """What the router remembers about a node's agent (beyond the node's view)."""

    node: str
    agent_id: str = ""
    agent_version: str = ""
    payload_version: int = 1
    interval: float = 5.0
    url: str = ""
    heartbeat_at: float = 0.0  # monotonic
    beats: int = 0
    models_digest: str = ""
    machine: MachineInfo = field(default_factory=MachineInfo)
    ollama_error: str = ""
    draining: bool = False
    live: bool = True

    def missed(self, now: float) -> int:
        """Heartbeats that should have arrived since the last one and did not."""
        return int((now - self.heartbeat_at) / self.interval)


def bearer_secret(authorization: str) -> str:
    """The credential of an ``Authorization: Bearer <secret>`` header ("" when absent)."""
    scheme, _, credential = authorization.strip().partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def secret_matches(presented: str, expected: str) -> bool:
    """Compare a presented secret with the configured one in constant time."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def registration_refusal(settings: Settings) -> str:
    """Why agents may not register with this router, or "" when they may."""
    if settings.auth.node_token or is_loopback_host(settings.host):
        return ""
    return (
        f"agent registration is off: the router listens on {settings.host or 'all addresses'} "
        "with no auth.node_token, and without one any host on the network could register a "
        "node and receive prompts. Set auth.node_token in the YAML (or HERD_NODE_TOKEN) and "
        "give herd-node the same --token."
    )


class Membership:
    """Takes agents' heartbeats into the fleet and watches their liveness.

    Args:
        fleet: The fleet whose nodes the agents join.
    """

    def __init__(self, fleet: Fleet) -> None:
        settings = fleet.settings
        self.fleet = fleet
        self.token = settings.auth.node_token
        self.refusal = registration_refusal(settings)
        self.degraded_after = settings.fleet.degraded_after
        self.offline_after = max(settings.fleet.offline_after, self.degraded_after)
        self.records: dict[str, AgentRecord] = {}
        self.admin_drained: set[str] = set()
        self.aliases: dict[str, str] = {}  # an agent's own name -> the YAML node it reports
        self.yaml_names = {n.name for n in settings.nodes}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Say whether agents may join, and start watching heartbeats."""
        if self.refusal:
            log.warning("%s", self.refusal)
        elif not self.token:
            log.info("herd-node agents on this machine may register (no auth.node_token set)")
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def authorized(self, authorization: str) -> bool:
        """Whether a heartbeat's ``Authorization`` header carries the node token."""
        if not self.token:
            return True
        return secret_matches(bearer_secret(authorization), self.token)

    def replaces_polling(self, node: FleetNode) -> bool:
        """True while a live agent reports this node, so polling it would add nothing."""
        record = self.records.get(node.name)
        return record is not None and record.live and self._speaks_for(node.name)

    def _speaks_for(self, name: str) -> bool:
        """Whether agents' word on this node's state counts: always with a node token,
        and without one only for nodes the agents brought (never a YAML node)."""
        return bool(self.token) or name not in self.yaml_names

    def set_drain(self, name: str, draining: bool) -> NodeView:
        """Drain or undrain a node by an administrator's word.

        Raises:
            KeyError: no node has that name.
        """
        node = self.fleet.nodes[name]
        record = self.records.get(name)
        if draining:
            self.admin_drained.add(name)
        else:
            # Undrain also lifts an agent's drain (an agent stopped for good, say); a
            # running agent that drains again says so in its next heartbeat.
            self.admin_drained.discard(name)
            if record is not None:
                record.draining = False
        node.view.draining = draining
        audit("drain" if draining else "undrain", node=name)
        if not draining:
            self.fleet.capacity_changed()
        return node.view

    def accept(self, heartbeat: Heartbeat, now: float | None = None) -> HeartbeatReply:
        """Take one heartbeat into the fleet: register, merge or update the node.

        Raises:
            MembershipError: a bad name or URL (400), or a name held by another type (409).
        """
        now = time.monotonic() if now is None else now
        if not _NODE_NAME.match(heartbeat.name):
            raise MembershipError(
                400, f"node name {heartbeat.name!r}: use letters, digits, '.', '_', '-' (<= 63)"
            )
        url = heartbeat.ollama_url.rstrip("/")
        problem = check_http_url(url)
        if problem:
            raise MembershipError(400, f"ollama_url {heartbeat.ollama_url!r}: {problem}")
        node = self._node_for(heartbeat.name, url)
        record = self.records.get(node.name)
        if record is None:
            record = self.records[node.name] = AgentRecord(node=node.name)
            log.info("node %s registered by herd-node at %s", node.name, url)
        elif _another_agent(record, heartbeat):
            log.warning("two agents report node %s; the latest heartbeat wins", node.name)
        if not record.live:
            log.info("node %s: its agent is back", node.name)
        if node.name not in self.yaml_names and url != node.config.url:
            self._move(node, url)
        elif url != record.url and node.config.url != url:
            log.warning(
                "node %s: the agent says Ollama is at %s; using the YAML url %s",
                node.name,
                url,
                node.config.url,
            )
        record.agent_id = heartbeat.agent_id
        record.agent_version = heartbeat.agent_version
        record.payload_version = heartbeat.payload_version
        record.interval = min(max(heartbeat.interval, MIN_INTERVAL), MAX_INTERVAL)
        record.url = url
        record.heartbeat_at = now
        record.beats += 1
        record.machine = heartbeat.machine
        record.ollama_error = heartbeat.ollama_error
        record.draining = heartbeat.draining
        record.live = True
        if heartbeat.models is not None:
            record.models_digest = heartbeat.models_digest
        self._apply(node, heartbeat)
        return HeartbeatReply(
            accepted=True,
            node=node.name,
            models_digest=record.models_digest,
            draining=node.view.draining,
            router_version=herd.__version__,
        )

    def _node_for(self, name: str, url: str) -> FleetNode:
        node = self.fleet.nodes.get(self.aliases.get(name, name))
        if node is None:
            # The agent of a YAML node may call the machine by another name: match its URL.
            for candidate in self.fleet.nodes.values():
                same_url = candidate.config.url.rstrip("/").lower() == url.lower()
                if same_url and candidate.name not in self.records:
                    node = candidate
                    self.aliases[name] = candidate.name
                    log.info("agent %r reports YAML node %s (same URL)", name, candidate.name)
                    break
        if node is None:
            try:
                node = self.fleet.add(NodeConfig(name=name, url=url, type="ollama"))
            except ValueError as exc:
                raise MembershipError(409, str(exc)) from None
        if node.config.type != "ollama":
            raise MembershipError(
                409, f"node {node.name!r} is configured as type {node.config.type!r}, not ollama"
            )
        return node

    def _move(self, node: FleetNode, url: str) -> None:
        shown = without_credentials(node.config.url), without_credentials(url)
        log.info("node %s: Ollama moved from %s to %s", node.name, *shown)
        node.config = msgspec.structs.replace(node.config, url=url)
        node.backend.node = node.config
        node.view.url = without_credentials(url)

    def _apply(self, node: FleetNode, heartbeat: Heartbeat) -> None:
        view = node.view
        record = self.records[node.name]
        trusted = self._speaks_for(node.name)
        if not trusted:
            pass  # the router's polls decide this node's state and models
        elif heartbeat.ollama_error:
            if view.status != "offline":
                log.warning("node %s is offline: %s", view.name, heartbeat.ollama_error)
            view.status = "offline"
            view.last_error = heartbeat.ollama_error
        else:
            models = heartbeat.models
            report = NodeReport(
                version=heartbeat.ollama_version or view.version,
                models=list(view.models.values())
                if models is None
                else [model_entry(m) for m in models],
                loaded=[loaded_model(m) for m in heartbeat.loaded],
            )
            self.fleet.apply(view, report)  # the same bookkeeping as a poll's
        if heartbeat.services is not None and trusted:
            self._apply_services(node, heartbeat)
        view.last_seen = time.time()
        view.agent = True
        agent_drains = record.draining and trusted
        view.draining = agent_drains or node.name in self.admin_drained
        view.num_parallel = node.config.num_parallel or heartbeat.num_parallel or view.num_parallel
        view.max_loaded_models = heartbeat.max_loaded_models or view.max_loaded_models
        machine = heartbeat.machine
        view.cpu_count = machine.cpu_count
        view.cpu_percent = machine.cpu_percent
        view.ram_total = machine.ram_total
        view.ram_available = machine.ram_available
        view.gpus = [msgspec.structs.asdict(g) for g in machine.gpus]
        view.vram_total = sum(g.vram_total for g in machine.gpus)
        view.vram_used = sum(g.vram_used for g in machine.gpus)

    def _apply_services(self, node: FleetNode, heartbeat: Heartbeat) -> None:
        """Take the agent's services (speech-to-text, embeddings, images) beside YAML's."""
        stated: list[ServiceConfig] = []
        for service in heartbeat.services or []:
            problem = check_http_url(service.url.rstrip("/"))
            if problem or service.type not in self.fleet.backend_classes:
                log.warning(
                    "node %s: ignoring advertised service %s (%s)",
                    node.name,
                    service.url,
                    problem or f"unknown type {service.type!r}",
                )
                continue
            stated.append(
                ServiceConfig(
                    type=service.type,
                    url=service.url.rstrip("/"),
                    models=list(service.models),
                    capabilities=list(service.capabilities),
                )
            )
        wanted = [*node.config.services, *stated]
        if [s.config for s in node.services] != wanted:
            self.fleet.apply_services(node, wanted)
            self.fleet.poll_services_soon(node)

    def check(self, now: float | None = None) -> list[FleetNode]:
        """Mark agent nodes degraded or offline by missed heartbeats.

        Returns:
            YAML nodes whose agent just went quiet: the caller polls them directly.
        """
        now = time.monotonic() if now is None else now
        to_poll: list[FleetNode] = []
        for record in self.records.values():
            node = self.fleet.nodes.get(record.node)
            if node is None:
                continue
            missed = record.missed(now)
            if missed < self.degraded_after:
                continue
            view = node.view
            quiet = f"no heartbeat from herd-node for {now - record.heartbeat_at:.1f}s"
            if record.live:
                record.live = False
                if node.name in self.yaml_names:
                    log.warning("node %s: %s; polling it directly", node.name, quiet)
                    to_poll.append(node)
                    continue
            if node.name in self.yaml_names:
                continue
            if missed >= self.offline_after:
                if view.status != "offline":
                    log.warning("node %s is offline: %s (%d missed)", node.name, quiet, missed)
                view.status = "offline"
                view.last_error = f"{quiet} ({missed} missed)"
            elif view.status == "online":
                log.warning("node %s is degraded: %s (%d missed)", node.name, quiet, missed)
                view.status = "degraded"
                view.last_error = f"{quiet} ({missed} missed)"
        return to_poll

    async def _watch(self) -> None:
        while True:
            intervals = [r.interval for r in self.records.values()]
            await asyncio.sleep(min([1.0, *(i / 4 for i in intervals)]))
            for node in self.check():
                await self.fleet.poll(node)


def _another_agent(record: AgentRecord, heartbeat: Heartbeat) -> bool:
    """A different agent process heartbeats for a node whose agent is still live."""
    changed = bool(record.agent_id and heartbeat.agent_id) and record.agent_id != heartbeat.agent_id
    return changed and record.live and not record.draining
