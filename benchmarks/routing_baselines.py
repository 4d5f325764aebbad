"""Benchmark-only herd plugin: baseline routing strategies, and node memory from YAML tags.

Loaded by ``bench_routing_quality.py`` through ``plugins.load``. The baselines are ordinary
signals (weight 0 unless a run turns one on and the built-in signals off), so every
strategy runs through the same queues, retries and admission: only the choice differs.
The ``vram:<GiB>`` tag stands in for what ``herd-node`` would report on a real machine.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from herd import InferenceRequest, NodeView, Signal, hookimpl


class _PickOne(Signal):
    """Scores 1.0 for the one node ``pick`` chose, 0.0 for the others."""

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 0.0

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._chosen = ""

    def pick(self, nodes: Sequence[NodeView]) -> NodeView:
        raise NotImplementedError

    def prepare(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> None:
        self._chosen = self.pick(nodes).name

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return 1.0 if node.name == self._chosen else 0.0


class RoundRobinSignal(_PickOne):
    name = "round-robin"

    def __init__(self, config: _PickOne.Config) -> None:
        super().__init__(config)
        self._turn = itertools.count()

    def pick(self, nodes: Sequence[NodeView]) -> NodeView:
        return nodes[next(self._turn) % len(nodes)]


class RandomSignal(_PickOne):
    name = "random"

    def __init__(self, config: _PickOne.Config) -> None:
        super().__init__(config)
        self._random = random.Random(1)

    def pick(self, nodes: Sequence[NodeView]) -> NodeView:
        return self._random.choice(list(nodes))


class LeastConnectionsSignal(Signal):
    """Fewest requests in flight or queued on the node, whatever the model."""

    name = "least-connections"

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 0.0

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return 1.0 / (1.0 + node.in_flight + sum(node.queued_by_model.values()))


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [RoundRobinSignal, RandomSignal, LeastConnectionsSignal]


@hookimpl
def herd_startup(router) -> None:
    for view in router.nodes():  # live views: what the signals read
        for tag in view.tags:
            if tag.startswith("vram:"):
                view.vram_total = int(float(tag[5:]) * 1024**3)
