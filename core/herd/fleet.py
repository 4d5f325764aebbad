"""The fleet registry: every node, its backend, and what the last poll saw."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import msgspec

from herd.config import NodeConfig, Settings
from herd.interfaces import Backend, BackendContext, NodeReport, NodeView

__all__ = ["LOCAL_OLLAMA_URL", "Fleet", "FleetNode"]

log = logging.getLogger("herd.fleet")

LOCAL_OLLAMA_URL = "http://127.0.0.1:11434"


@dataclass(slots=True)
class FleetNode:
    """A node: its configuration, its backend object and the router's view of it."""

    config: NodeConfig
    backend: Backend
    view: NodeView

    @property
    def name(self) -> str:
        return self.config.name


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
        self.discovered_local = False
        for node in settings.nodes:
            self.add(node)

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
            url=node.url,
            type=node.type,
            capabilities=cls.capabilities,
            num_parallel=node.num_parallel or 0,
            tags=list(node.tags),
        )
        fleet_node = FleetNode(config=node, backend=backend, view=view)
        self.nodes[node.name] = fleet_node
        return fleet_node

    def views(self) -> list[NodeView]:
        """Every node's view, in configuration order."""
        return [n.view for n in self.nodes.values()]

    def online(self) -> list[NodeView]:
        """The nodes that answered their last poll or request."""
        return [n.view for n in self.nodes.values() if n.view.status == "online"]

    async def start(self) -> None:
        """Poll every node once (so the first request sees the fleet), then keep polling."""
        if not self.nodes and self.settings.fleet.discover_local:
            local = self.add(NodeConfig(name="local", url=LOCAL_OLLAMA_URL))
            self.discovered_local = True
            await self.poll(local)
            if local.view.online:
                log.info("found Ollama at %s; serving it as node 'local'", LOCAL_OLLAMA_URL)
            else:
                log.warning(
                    "no nodes configured and no Ollama answers at %s. Add nodes to a config "
                    "file (herd --config herd.yaml, with `nodes: [{name: gpu1, url: "
                    "http://HOST:11434}]`), set HERD_NODES, or start an emulated node with "
                    "`herd-sim --port 11434`; herd keeps looking for it.",
                    LOCAL_OLLAMA_URL,
                )
        else:
            await asyncio.gather(*(self.poll(n) for n in self.nodes.values()))
        for node in self.nodes.values():
            self._tasks.append(asyncio.create_task(self._poll_forever(node)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for node in self.nodes.values():
            await node.backend.close()

    def poll_soon(self, node: FleetNode) -> None:
        """Poll a node in the background (after a pull, a delete, a copy)."""
        task = asyncio.get_running_loop().create_task(self.poll(node))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _poll_forever(self, node: FleetNode) -> None:
        interval = self.settings.fleet.poll_interval
        while True:
            await asyncio.sleep(interval)
            await self.poll(node)

    async def poll(self, node: FleetNode) -> None:
        """Poll one node and update its view; never raises."""
        try:
            report = await node.backend.poll()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.mark_unreachable(node.view, _describe(exc))
            return
        self.apply(node.view, report)

    def apply(self, view: NodeView, report: NodeReport) -> None:
        """Take a poll's findings into a node's view."""
        if view.status != "online":
            log.info("node %s is online (%s)", view.name, view.url)
        view.status = "online"
        view.last_error = ""
        view.last_seen = time.time()
        view.version = report.version
        view.models = {m.key: m for m in report.models}
        view.loaded = {m.key: m for m in report.loaded}

    def mark_unreachable(self, view: NodeView, error: str) -> None:
        """Mark a node offline after a failed poll or a failed connection."""
        if view.status != "offline":
            log.warning("node %s is offline: %s", view.name, error)
        view.status = "offline"
        view.last_error = error


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
