"""Memory-fit signal: is there room for the model on the node, and at what cost?"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import is_

from herd import InferenceRequest, NodeView, Signal, hookimpl

GB = 1e9


def memory_of(node: NodeView) -> tuple[int, int]:
    """``(capacity, used)`` bytes: GPU memory when the agent reports it, else RAM (unified
    memory machines), else the most the node's models ever took at once (learned from
    ``/api/ps``: a lower bound), else ``(0, 0)`` (unknown)."""
    loaded = sum(m.size_vram or m.size for m in node.loaded.values()) if node.loaded else 0
    if node.vram_total:
        return node.vram_total, max(node.vram_used, loaded)
    if node.ram_total:
        used = node.ram_total - node.ram_available if node.ram_available else loaded
        return node.ram_total, max(used, loaded)
    if node.vram_seen:
        return node.vram_seen, loaded
    return 0, 0


class MemoryFitSignal(Signal):
    """Loaded 1.0 (``offloaded`` when ``/api/ps`` shows part of it in system RAM: the node
    cannot hold it); fits in free memory 0.8-1.0 (more headroom, higher); fits by evicting
    idle models ``eviction``; fits only once busy models finish ``busy``; memory unknown
    ``unknown`` (memory learned from ``/api/ps`` is a lower bound: beyond it, unknown).
    A node whose whole memory is smaller than the model is rejected (by
    ``prepare``) when some other candidate can hold it.

    The model's size is its measured resident size when any node has it loaded, else its
    size on disk plus a KV-cache allowance for the context it will load with.
    """

    name = "memory-fit"
    reads = frozenset(  # what node_values (memory_of too) and cache_key read
        {"loaded", "loading", "vram_total", "vram_used", "ram_total", "ram_available"}
        | {"vram_seen", "models"}
    )
    request_reads = frozenset({"model_key", "num_ctx"})  # (the model's size)

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 1.0
        kv_bytes_per_token_per_gb: float = 20_000.0
        default_num_ctx: int = 4096
        eviction: float = 0.4
        busy: float = 0.2
        unknown: float = 0.7
        offloaded: float = 0.2

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._resident: dict[str, int] = {}
        self._needed = 0  # the model's size, as the last cache_key found it
        self._settled: tuple[list | None, list[float], dict[str, str] | None] = (None, [], None)
        # the last prepare's nodes and their scores, and the same by name (built if asked)
        self._prepared: tuple[Sequence[NodeView], list[float]] = ((), [])
        self._scores: dict[str, float] | None = {}

    def needed_bytes(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> int:
        """The memory the model takes once loaded (learned when any node has it loaded)."""
        key = request.model_key
        for node in reversed(nodes):  # the last node with it loaded says how big it is
            loaded = node.loaded.get(key) if node.loaded else None
            if loaded is not None and loaded.size:
                if self._resident.get(key) != loaded.size:
                    self._resident[key] = loaded.size
                    self.invalidate()  # what another decision's nodes size it by moved
                return loaded.size
        resident = self._resident.get(key)
        if resident is not None:
            return resident
        disk = 0
        for node in nodes:
            entry = node.models.get(key)
            if entry is not None and entry.size > disk:
                disk = entry.size
        context = request.num_ctx or self.config.default_num_ctx
        return int(disk + disk / GB * self.config.kv_bytes_per_token_per_gb * context)

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> tuple[str, int]:
        self._needed = self.needed_bytes(request, nodes)  # for node_values: all nodes'
        return request.model_key, self._needed

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list:
        """Each node's score, or (score 0) the reason it is too small: the key's size; None
        where it fits only once idle models leave (settle works that out each time)."""
        key = request.model_key
        needed = self._needed  # as cache_key found it over every candidate
        config = self.config
        values: list[float | str | None] = []
        for node in nodes:
            loaded_models = node.loaded
            loaded = loaded_models.get(key) if loaded_models else None
            if loaded is not None:
                if loaded.size_vram and loaded.size_vram < 0.9 * loaded.size:
                    values.append(config.offloaded)  # partly in system RAM: it cannot hold it
                else:
                    values.append(1.0)
                continue
            if key in node.loading:
                values.append(1.0)
                continue
            if node.vram_total:  # memory_of's common case, inlined
                capacity, exact = node.vram_total, True
                used = node.vram_used
                if loaded_models:
                    used = max(used, sum(m.size_vram or m.size for m in loaded_models.values()))
            else:
                capacity, used = memory_of(node)
                exact = bool(node.ram_total)
            if not capacity:
                values.append(config.unknown)
            elif needed <= capacity - used:
                values.append(0.8 + 0.2 * (1.0 - needed / (capacity - used)))
            elif not exact:
                values.append(config.unknown)  # a learned lower bound: it may fit
            elif needed > capacity:
                values.append(f"needs {needed / GB:.1f} GB, node has {capacity / GB:.1f} GB in all")
            else:  # fits once idle models leave: which are idle moves with every request
                values.append(None)  # (settle asks each time)
        return values

    def _evicting(self, node: NodeView) -> float:
        """A node the model fits only once others leave it: ``eviction`` when the idle
        ones make room, else ``busy``."""
        capacity, used = memory_of(node)
        idle = node.in_flight_by_model
        evictable = sum(m.size_vram or m.size for k, m in node.loaded.items() if not idle.get(k))
        config = self.config
        return config.eviction if self._needed <= capacity - used + evictable else config.busy

    def settle(
        self, request: InferenceRequest, nodes: Sequence[NodeView], values: list
    ) -> tuple[list[float], dict[str, str] | None]:
        last = self._settled
        evicting = any(map(is_, values, repeat(None)))
        if not evicting and (values is last[0] or values == last[0]):
            self._prepared = (nodes, last[1])
            self._scores = None
            return last[1], last[2]  # the same cached values: the same verdicts
        cached = None if evicting else values
        if evicting:
            values = [
                self._evicting(node) if value is None else value
                for node, value in zip(nodes, values, strict=True)
            ]
        too_small: dict[str, str] = {}
        if str in set(map(type, values)):  # a node too small for the model
            too_small = {
                node.name: value
                for node, value in zip(nodes, values, strict=True)
                if value.__class__ is str
            }
            values = [0.0 if value.__class__ is str else value for value in values]
        self._prepared = (nodes, values)
        self._scores = None
        verdicts = too_small if len(too_small) < len(nodes) else None
        self._settled = (cached, values, verdicts)
        return values, verdicts

    def prepare(
        self, request: InferenceRequest, nodes: Sequence[NodeView]
    ) -> dict[str, str] | None:
        self.cache_key(request, nodes)
        return self.settle(request, nodes, self.node_values(request, nodes))[1]

    def _by_name(self) -> dict[str, float]:
        if self._scores is None:
            nodes, scores = self._prepared
            self._scores = {node.name: score for node, score in zip(nodes, scores, strict=True)}
        return self._scores

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        if node.name not in self._by_name():  # a direct call, without prepare
            self.prepare(request, [node])
        return self._by_name()[node.name]

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        if nodes is self._prepared[0]:
            return self._prepared[1]
        known = self._by_name()
        return [known[node.name] for node in nodes]


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [MemoryFitSignal]
