"""Role-affinity signal: big models on big machines, small models on small ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from herd import InferenceRequest, NodeView, Signal, hookimpl


class RoleAffinitySignal(Signal):
    """Scores how much of the node's memory the model would use: ``target_share`` or more
    scores 1.0, less scores ``sqrt(share / target_share)``. A 2 GB model scores 0.58 on an
    12 GB machine and 0.2 on a 96 GB one, so small models keep to small machines and the
    big machines stay free for the models only they can hold (memory-fit rejects machines
    that are too small). ``unknown`` when the node's memory is not reported.

    ``mode: big-first`` scores ``sqrt(memory / largest candidate's memory)`` instead:
    every model prefers the biggest machine (see docs/routing.md for which is default).
    """

    name = "role-affinity"
    reads = frozenset({"vram_total", "ram_total"})  # what node_values reads
    request_reads = frozenset()  # its key and settle read no request field

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 0.5
        mode: Literal["best-fit", "big-first"] = "big-first"
        target_share: float = 0.5
        unknown: float = 0.5

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._size = 0.0
        self._largest = 0
        self._memories: tuple[Sequence[NodeView], list[int]] | None = None
        self._settled: tuple[list[int] | None, list[float]] = (None, [])  # values, scores

    def prepare(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> None:
        if self.config.mode == "big-first":
            memories = [node.vram_total or node.ram_total for node in nodes]  # _exact_memory
            self._largest = max(memories, default=0)
            self._memories = (nodes, memories)  # scores() reuses them for the same nodes
            return
        key = request.model_key
        size = 0
        for node in nodes:
            loaded = node.loaded.get(key)
            if loaded is not None and loaded.size:
                size = loaded.size
                break
            entry = node.models.get(key)
            if entry is not None and entry.size > size:
                size = entry.size
        self._size = size / self.config.target_share

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str | None:
        # best-fit weighs the model's size, found over all candidates: not cached
        return "memory" if self.config.mode == "big-first" else None

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[int]:
        return [_exact_memory(node) for node in nodes]

    def settle(
        self, request: InferenceRequest, nodes: Sequence[NodeView], values: list[int]
    ) -> tuple[list[float], None]:
        last = self._settled[0]
        if values is last or values == last:
            return self._settled[1], None  # the same cached values: the same scores
        self._largest = largest = max(values, default=0)
        self._memories = None
        unknown = self.config.unknown
        if not largest:
            scores = [unknown] * len(values)
        else:  # few distinct memory sizes in a fleet: each scored once
            by_memory = {m: (m / largest) ** 0.5 if m else unknown for m in set(values)}
            scores = list(map(by_memory.__getitem__, values))
        self._settled = (values, scores)
        return scores, None

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return self.scores(request, [node])[0]

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        if self.config.mode == "big-first":
            largest, unknown = self._largest, self.config.unknown
            prepared, self._memories = self._memories, None
            if not largest:
                return [unknown] * len(nodes)
            if prepared is not None and prepared[0] is nodes:
                memories = prepared[1]
            else:
                memories = [_exact_memory(node) for node in nodes]
            return [(memory / largest) ** 0.5 if memory else unknown for memory in memories]
        size, unknown = self._size, self.config.unknown
        if not size:
            return [unknown] * len(nodes)
        out = []
        for node in nodes:
            capacity = node.vram_total or node.ram_total
            share = size / capacity if capacity else -1.0
            out.append(unknown if share < 0 else 1.0 if share >= 1.0 else share**0.5)
        return out


def _exact_memory(node: NodeView) -> int:
    """The node's memory when reported; a lower bound learned from ``/api/ps`` says how
    much it was seen using, not how big it is, so it does not count here."""
    return node.vram_total or node.ram_total  # NodeView.memory()'s exact cases


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [RoleAffinitySignal]
