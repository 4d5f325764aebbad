"""Auto-pull: a model no node has is pulled onto the best node with room, once.

Concurrent requests for the same model share one pull. The pull outlives a client that
gives up (the next request finds it done); a pull that fails ends every waiter's request
with a 404 that says why, as soon as the node answers.
"""

from __future__ import annotations

import asyncio
import logging
import re

import msgspec

from herd._engine.audit import audit
from herd._engine.fleet.registry import Fleet, FleetNode
from herd._engine.node_lines import NodeLines
from herd.errors import HerdError
from herd.interfaces import InferenceRequest, NodeFailure, NodeView, StreamBroken

__all__ = ["AutoPuller", "no_pull_target", "pull_target"]

log = logging.getLogger("herd.auto_pull")


_PARAMS = re.compile(r"[:\-_](\d+(?:\.\d+)?)b\b")
_BYTES_PER_PARAM = 0.6e9  # a 4-bit quantised model, with its KV cache at a default context


def expected_size(key: str) -> int:
    """Bytes a model will take, guessed from its name (``qwen3:30b`` about 18 GB), before
    any node has it; 0 when the name says nothing."""
    match = _PARAMS.search(key.lower())
    return int(float(match.group(1)) * _BYTES_PER_PARAM) if match else 0


def _used(view: NodeView) -> int:
    return max(sum(m.size_vram or m.size for m in view.loaded.values()), view.vram_used)


def _fit(view: NodeView, size: int) -> int:
    """0: known to hold a model of ``size`` bytes; 1: unknown; 2: known too small."""
    memory, exact = view.memory()
    if not size or not memory:
        return 1
    if size <= memory:
        return 0
    return 2 if exact else 1  # a learned lower bound cannot say "too small"


def pull_target(fleet: Fleet, capability: str, key: str = "") -> FleetNode | None:
    """The node to pull onto: online, not draining; a node known to hold the model (by
    its expected size, against agent-reported or learned memory) before one not known
    to, and one known too small last; then the most free memory, then the fewest
    requests in flight, then the most memory in all."""
    choices = [
        node
        for node in fleet.nodes.values()
        if node.view.status == "online"
        and not node.view.draining
        and capability in node.view.capabilities
    ]
    if not choices:
        return None
    size = expected_size(key)

    def order(node: FleetNode) -> tuple[int, int, int, int]:
        view = node.view
        memory, _ = view.memory()
        return (_fit(view, size), -(memory - _used(view)), view.in_flight, -memory)

    return min(choices, key=order)


def no_pull_target(fleet: Fleet) -> HerdError:
    """Why :func:`pull_target` found no node (a 503 to retry): none online, or every
    online node draining (say which: an operator's own doing, undone by undraining)."""
    online = [node for node in fleet.nodes.values() if node.view.status == "online"]
    draining = [node.name for node in online if node.view.draining]
    if online and len(draining) == len(online):
        names = ", ".join(draining[:5])
        return HerdError(503, f"no node to pull onto: every online node is draining ({names})")
    if online:
        return HerdError(503, "no online node can take this model", retry_after=5)
    return HerdError(503, "no node is online to pull onto", retry_after=5)


class AutoPuller:
    """Runs at most one pull per model; requests wait for it up to a timeout."""

    def __init__(self, fleet: Fleet, timeout_s: float) -> None:
        self.fleet = fleet
        self.timeout_s = timeout_s
        self._pulls: dict[str, asyncio.Task[str]] = {}

    async def pull(self, request: InferenceRequest, capability: str) -> None:
        """Make the request's model present on some node, or raise.

        Raises:
            HerdError: 404 when the pull failed (no such model), 503 when no node is online
                or the pull outlasted ``routing.auto_pull_timeout_s``.
        """
        key = request.model_key
        task = self._pulls.get(key)
        if task is None:
            node = pull_target(self.fleet, capability, key)
            if node is None:
                raise no_pull_target(self.fleet)
            task = asyncio.get_running_loop().create_task(self._pull(node, key))
            self._pulls[key] = task
            task.add_done_callback(self._forget)
        try:
            node_name = await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except TimeoutError:
            raise HerdError(
                503,
                f"model '{request.model}' is still being pulled; try again",
                retry_after=30,
                code="model_pulling",
            ) from None
        request.notes.append(f"auto-pulled {key} onto {node_name}")

    def _forget(self, task: asyncio.Task[str]) -> None:
        for key, running in list(self._pulls.items()):
            if running is task:
                del self._pulls[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody waited for is not an error

    async def _pull(self, node: FleetNode, key: str) -> str:
        audit("auto-pull", model=key, node=node.name)
        try:
            reply = await node.backend.pull(key)
        except NodeFailure as failure:
            raise _pull_failed(key, node.name, failure.message) from None
        try:
            if reply.status >= 400:
                raise _pull_failed(key, node.name, _error_of(reply.first, reply.status))
            lines = NodeLines()  # progress lines read as JSON: an in-band error ends the pull
            lines.check(reply.first)
            if reply.streaming and not (lines.error or lines.bad):
                async for line in reply.rest():
                    lines.check(line)
                    if lines.error or lines.bad:
                        break
            if lines.error or lines.bad:
                raise _pull_failed(key, node.name, lines.error or lines.bad)
        except StreamBroken as broken:
            raise _pull_failed(key, node.name, str(broken)) from None
        finally:
            await reply.aclose()
        await self.fleet.poll(node)
        if not node.view.has_model(key):
            raise _pull_failed(key, node.name, "the node does not list it after the pull")
        return node.name


def _error_of(line: bytes, status: int) -> str:
    try:
        data = msgspec.json.decode(line)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return line.decode("utf-8", "replace").strip() or f"HTTP {status}"


def _pull_failed(key: str, node: str, why: str) -> HerdError:
    return HerdError(
        404,
        f"model '{key}' not found (auto-pull on node {node} failed: {why})",
        code="model_not_found",
        param="model",
    )
