"""Thermal signal: a model already loaded in memory beats one that must load from disk."""

from __future__ import annotations

from herd import InferenceRequest, NodeView, Signal, hookimpl


class ThermalSignal(Signal):
    """Scores 1.0 when the model is loaded (hot), 0.3 when it is only on disk (cold)."""

    name = "thermal"

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 3.0
        cold: float = 0.3

    def reject(self, request: InferenceRequest, node: NodeView) -> str | None:
        if not node.has_model(request.model_key):
            return "model not on this node"
        return None

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        if request.model_key in node.loaded:
            return 1.0
        return self.config.cold


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [ThermalSignal]
