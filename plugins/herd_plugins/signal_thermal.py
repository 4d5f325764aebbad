"""Thermal signal: how ready the model is on the node, from hot (in memory) to cold."""

from __future__ import annotations

import time
from collections.abc import Sequence

from herd import InferenceRequest, NodeView, Signal, hookimpl


class ThermalSignal(Signal):
    """Hot (loaded) 1.0; loading (a request is already loading it there) ``loading``;
    warm (left memory less than ``warm_window_s`` ago, still in the disk cache) ``warm``;
    cold (on disk only) ``cold``; absent 0.
    """

    name = "thermal"

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 3.0
        loading: float = 0.9
        warm: float = 0.5
        cold: float = 0.2
        warm_window_s: float = 900.0

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return self.scores(request, [node])[0]

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        key = request.model_key
        config = self.config
        out = []
        for node in nodes:
            if key in node.loaded:
                out.append(1.0)
            elif key in node.loading:
                out.append(config.loading)
            elif key not in node.models:
                out.append(0.0)
            else:
                left_at = node.unloaded_at.get(key)
                warm = left_at is not None and time.time() - left_at < config.warm_window_s
                out.append(config.warm if warm else config.cold)
        return out


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [ThermalSignal]
