"""herd-gpu-temp: a herd signal that keeps new work off hot GPUs."""

from herd import InferenceRequest, NodeView, Signal, hookimpl


class GpuTemperatureSignal(Signal):
    """1.0 at or below ``cool_c`` (hottest GPU), down to 0.0 at ``hot_c``; 1.0 if unknown."""

    name = "gpu-temp"

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 0.0  # off until YAML gives it a weight
        cool_c: float = 60.0
        hot_c: float = 85.0

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        temps = [gpu["temperature"] for gpu in node.gpus if gpu.get("temperature") is not None]
        if not temps:
            return 1.0
        cool, hot = self.config.cool_c, self.config.hot_c
        return min(1.0, max(0.0, (hot - max(temps)) / (hot - cool)))


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [GpuTemperatureSignal]
