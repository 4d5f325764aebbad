"""Thermal signal: how ready the model is on the node, from hot (in memory) to cold."""

from __future__ import annotations

import time
from collections.abc import Sequence

from herd import InferenceRequest, NodeView, Signal, hookimpl


class ThermalSignal(Signal):
    """Hot (loaded) 1.0; loading (a request is already loading it there) ``loading``;
    warm (left memory less than ``warm_window_s`` ago, still in the disk cache) ``warm``;
    cold (on disk only) ``cold``; absent 0.

    A load costs time in proportion to the model's size, so the warm and cold penalties
    shrink for small models: a model of ``s`` bytes under ``quick_load_bytes`` scores
    ``base + (1 - base) * (1 - s / quick_load_bytes)``. A 45 MB embedding model on disk is
    then nearly as good as a loaded one, and queue depth spreads such models over the
    fleet instead of piling them on the one node where they happen to be loaded.
    """

    name = "thermal"
    reads = frozenset({"loaded", "loading", "models", "unloaded_at"})  # node_values
    request_reads = frozenset({"model_key"})  # (warm values are None: the clock)

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 3.0
        loading: float = 0.9
        warm: float = 0.5
        cold: float = 0.2
        warm_window_s: float = 900.0
        quick_load_bytes: int = 1024**3

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str:
        return request.model_key

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list:
        """Scores, but None where the model left memory (warm turns cold with the clock)."""
        key = request.model_key
        return [
            None
            if key not in node.loaded
            and key not in node.loading
            and key in node.models
            and node.unloaded_at.get(key) is not None
            else score
            for node, score in zip(nodes, self.scores(request, nodes), strict=True)
        ]

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return self.scores(request, [node])[0]

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        key = request.model_key
        config = self.config
        loading, warm, cold = config.loading, config.warm, config.cold
        quick = config.quick_load_bytes
        warm_since = time.time() - config.warm_window_s
        out = []
        for node in nodes:  # inlined: this runs for every node on every request
            if key in node.loaded:
                out.append(1.0)
            elif key in node.loading:
                out.append(loading)
            else:
                entry = node.models.get(key)
                if entry is None:
                    out.append(0.0)
                    continue
                unloaded = node.unloaded_at
                left_at = unloaded.get(key) if unloaded else None
                base = warm if left_at is not None and left_at > warm_since else cold
                size = entry.size
                if 0 < size < quick:  # a small model loads at once: its penalty shrinks
                    base += (1.0 - base) * (1.0 - size / quick)
                out.append(base)
        return out


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [ThermalSignal]
