"""The fleet registry: every node, its backend, and what the last poll saw."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec

from herd._engine.fleet.membership import Membership
from herd._engine.fleet.services import NodeService, build_service, poll_services, refresh_view
from herd.interfaces import Backend, BackendContext, LoadedModel, NodeReport, NodeView
from herd.net import describe_network_error, out_of_local_resources, without_credentials
from herd.settings import NodeConfig, ServiceConfig, Settings

__all__ = ["LOCAL_OLLAMA_URL", "Fleet", "FleetNode", "note_memory_changes"]

log = logging.getLogger("herd.fleet")
_view_of = attrgetter("view")

LOCAL_OLLAMA_URL = "http://127.0.0.1:11434"


@dataclass(slots=True)
class FleetNode:
    """A node: its configuration, its backend object and the router's view of it."""

    config: NodeConfig
    backend: Backend
    view: NodeView
    services: list[NodeService] = field(default_factory=list)
    discovered: bool = False  # found by looking (the local Ollama), not configured
    #: the configured name (a plain attribute: read several times per request)
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.config.name

    def backend_for(self, capability: str, model_key: str) -> Backend:
        """The backend that serves ``model_key`` for ``capability``: a service offering
        it, else the node's own backend."""
        for service in self.services:
            if service.online and model_key in service.models().get(capability, ()):
                return service.backend
        return self.backend


class Fleet:
    """Holds the nodes and polls each one on an interval (agentless mode)."""

    def __init__(
        self,
        settings: Settings,
        backend_classes: dict[str, type[Backend]],
        context: BackendContext,
    ) -> None:
        self.settings = settings
        self.backend_classes = backend_classes
        self.context = context
        self.nodes: dict[str, FleetNode] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        #: Called when a node can take more work (it came online or stopped draining):
        #: the scheduler wakes the requests it holds, instead of having them re-poll.
        self.on_capacity: Callable[[], None] | None = None
        self.cluster: Any = None  # the ClusterLink, with cluster.redis_url: one replica polls
        self._failures: dict[str, deque[float]] = {}  # node -> monotonic times of failures
        self._confirming: set[str] = set()  # nodes being polled after a failed request
        for node in settings.nodes:
            self.add(node)
        self.membership = Membership(self)

    def add(self, node: NodeConfig) -> FleetNode:
        """Register a node; its backend type must be a registered backend."""
        if node.name in self.nodes:
            raise ValueError(f"two nodes are named {node.name!r}")
        cls = self.backend_classes.get(node.type)
        if cls is None:
            known = ", ".join(sorted(self.backend_classes)) or "none"
            raise ValueError(f"node {node.name!r}: unknown type {node.type!r} (known: {known})")
        config = msgspec.convert(node.options, cls.Config, strict=False)
        backend = cls(node, config, self.context)
        view = NodeView(
            name=node.name,
            url=without_credentials(node.url),
            type=node.type,
            capabilities=cls.capabilities,
            num_parallel=node.num_parallel or 0,
            tags=list(node.tags),
            assumed_parallel=self.settings.routing.default_num_parallel,
        )
        fleet_node = FleetNode(config=node, backend=backend, view=view)
        if node.services:
            self.apply_services(fleet_node, node.services)
        self.nodes[node.name] = fleet_node
        return fleet_node

    def apply_services(self, node: FleetNode, services: Sequence[ServiceConfig]) -> None:
        """Give a node these services (YAML ``nodes[].services``, or a heartbeat's list).

        A service already there with the same configuration keeps its backend and what
        its polls found; the others are made anew, and services not listed are dropped.
        """
        fresh = [
            next((old for old in node.services if old.config == service), None)
            or build_service(node.config, service, self.backend_classes, self.context)
            for service in services
        ]
        for old in node.services:
            if all(old is not new for new in fresh):
                self._closing(old.backend)
        node.services = fresh
        own = self.backend_classes[node.config.type].capabilities
        refresh_view(node.view, frozenset(own), fresh)

    def _closing(self, backend: Backend) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing opened yet
            task = asyncio.get_running_loop().create_task(backend.close())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def views(self) -> list[NodeView]:
        """Every node's view, in configuration order."""
        return list(map(_view_of, self.nodes.values()))  # (per request: no comprehension)

    async def start(self) -> None:
        """Poll every node once (so the first request sees the fleet), then keep polling."""
        if not self.nodes and self.settings.fleet.discover_local:
            local = self.add(NodeConfig(name="local", url=LOCAL_OLLAMA_URL))
            local.discovered = True
            # Not found is said once, below, with what to do: no "node local is offline" first
            local.view.status = "offline"
            await self.poll(local)
            if local.view.online:
                log.info("found Ollama at %s; serving it as node 'local'", LOCAL_OLLAMA_URL)
            else:
                log.warning(
                    "no nodes configured and no Ollama answers at %s. Add nodes to a config "
                    "file (herd --config herd.yaml, with `nodes: [{name: gpu1, url: "
                    "http://HOST:11434}]`), set HERD_NODES=http://HOST:11434 (commas between "
                    "several), or start an emulated node with "
                    "`herd-sim --port 11434`; herd keeps looking for it.",
                    LOCAL_OLLAMA_URL,
                )
        else:
            await asyncio.gather(*(self.poll(n) for n in self.nodes.values()))
        for node in self.nodes.values():
            self._tasks.append(asyncio.create_task(self._poll_forever(node)))
        self.membership.start()

    async def stop(self) -> None:
        await self.membership.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for node in self.nodes.values():
            await node.backend.close()
            for service in node.services:
                await service.backend.close()

    def poll_soon(self, node: FleetNode) -> None:
        """Poll a node in the background (after a pull, a delete, a copy)."""
        task = asyncio.get_running_loop().create_task(self.poll(node))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def poll_services_soon(self, node: FleetNode) -> None:
        """Poll a node's services in the background (an agent just advertised them)."""
        own = frozenset(type(node.backend).capabilities)
        task = asyncio.get_running_loop().create_task(poll_services(node.view, own, node.services))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _poll_forever(self, node: FleetNode) -> None:
        interval = self.settings.fleet.poll_interval
        while True:
            await asyncio.sleep(interval)
            if self.membership.replaces_polling(node):
                if node.services:  # the agent reports its Ollama, not the node's services
                    own = frozenset(type(node.backend).capabilities)
                    await poll_services(node.view, own, node.services)
                continue  # a live herd-node agent reports this node
            if self.cluster is not None and not self.cluster.polls():
                continue  # another replica polls and shares what it finds
            await self.poll(node)

    async def poll(self, node: FleetNode) -> None:
        """Poll one node (and its services, at the same time); never raises."""
        if node.services:
            own = frozenset(type(node.backend).capabilities)
            await asyncio.gather(self._poll_own(node), poll_services(node.view, own, node.services))
        else:
            await self._poll_own(node)

    async def _poll_own(self, node: FleetNode) -> None:
        try:
            report = await node.backend.poll()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if out_of_local_resources(exc):  # the router's own trouble says nothing of the node
                log.warning(
                    "could not poll node %s: the router is out of resources: %s",
                    node.name,
                    _describe(exc),
                )
                return
            self.mark_unreachable(node.view, _describe(exc))
            if self.cluster is not None:
                self.cluster.polled(node.name, None, _describe(exc))
            return
        self.apply(node.view, report)
        if self.cluster is not None:
            self.cluster.polled(node.name, report)

    def apply(self, view: NodeView, report: NodeReport) -> None:
        """Take a poll's findings into a node's view."""
        now = time.time()
        came_online = view.status != "online"
        if came_online:
            log.info("node %s is online (%s)", view.name, view.url)
            view.online_since = now
        view.status = "online"
        view.last_error = ""
        view.last_seen = now
        view.version = report.version
        view.models = {m.key: m for m in report.models}
        loaded = {m.key: m for m in report.loaded}
        note_memory_changes(view, loaded, now)
        view.loaded = loaded
        if came_online:
            self.capacity_changed()

    def capacity_changed(self) -> None:
        """Tell the scheduler a node can take more work now."""
        if self.on_capacity is not None:
            self.on_capacity()

    def note_request_failure(self, node: FleetNode, error: str) -> None:
        """A request could not reach ``node`` (refused, reset or timed out before an answer).

        One failure is not evidence enough to take a node offline (a reset connection, a
        restart between two polls): the node goes offline when ``fleet.failures_to_offline``
        failures fall within ``fleet.failure_window_s``, and each failure makes the router
        poll it at once, so a node that is really down is found by its own health check.
        """
        now = time.monotonic()
        fleet = self.settings.fleet
        recent = self._failures.setdefault(node.name, deque())
        recent.append(now)
        while recent and now - recent[0] > fleet.failure_window_s:
            recent.popleft()
        if len(recent) >= fleet.failures_to_offline:
            recent.clear()
            self.mark_unreachable(
                node.view, f"{error} ({fleet.failures_to_offline} failed requests)"
            )
        elif node.name not in self._confirming and node.view.status != "offline":
            self._confirming.add(node.name)
            task = asyncio.get_running_loop().create_task(self._confirm(node))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _confirm(self, node: FleetNode) -> None:
        try:
            await self.poll(node)
        finally:
            self._confirming.discard(node.name)

    def mark_unreachable(self, view: NodeView, error: str) -> None:
        """Mark a node offline after a failed poll (or enough failed requests)."""
        if view.status != "offline":
            log.warning("node %s is offline: %s", view.name, error)
        view.status = "offline"
        view.last_error = error


def _describe(exc: BaseException) -> str:
    return describe_network_error(exc)


def note_memory_changes(view: NodeView, loaded: dict[str, LoadedModel], now: float) -> None:
    """Before a node's loaded models are replaced: remember what left memory, and when
    (the thermal signal's "warm"), and forget "loading" marks the report settles.

    A mark stays while the model is not reported loaded and requests for it are still in
    flight (the load may be under way); otherwise the report is the truth.
    """
    in_memory = sum(m.size_vram or m.size for m in loaded.values())
    if in_memory > view.vram_seen:  # learned: the node held this much at once
        view.vram_seen = in_memory
    for key in view.loaded:
        if key not in loaded:
            view.unloaded_at[key] = now
    for key in loaded:
        view.unloaded_at.pop(key, None)
    if view.loading:
        in_flight = view.in_flight_by_model
        view.loading = {
            key: ctx
            for key, ctx in view.loading.items()
            if key not in loaded and in_flight.get(key, 0) > 0
        }
