"""Queue-depth signal: fewer requests in flight on a node is better."""

from __future__ import annotations

from herd import InferenceRequest, NodeView, Signal, hookimpl


class QueueDepthSignal(Signal):
    """Scores ``1 / (1 + in_flight)`` over all the node's requests through this router."""

    name = "queue-depth"

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 2.0

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return 1.0 / (1.0 + node.in_flight)


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [QueueDepthSignal]
