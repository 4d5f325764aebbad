"""Queue-depth signal: requests waiting and in flight on the node, against its slots."""

from __future__ import annotations

from collections.abc import Sequence

from herd import InferenceRequest, NodeView, Signal, hookimpl


class QueueDepthSignal(Signal):
    """With a free slot for the model: ``1 - busy / (2 * slots)``, from 1.0 (idle) down to
    just above 0.5 (one slot left). With none (the request would wait):
    ``saturated / (1 + queued / slots)``: 0.4 with every slot busy, 0.2 with a full round
    already waiting. Having to wait is a step down, not a slope: a free slot now beats a
    short queue. ``busy`` counts the model's requests in flight plus ``other_models`` times
    the node's requests for other models (they share the GPU).
    """

    name = "queue-depth"
    reads = frozenset(  # what scores (its node_values) reads
        {"in_flight", "in_flight_by_model", "queued_by_model"}
        | {"num_parallel", "learned_parallel", "assumed_parallel"}
    )
    request_reads = frozenset({"model_key"})

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 4.0
        saturated: float = 0.4
        other_models: float = 0.25

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str:
        return request.model_key  # the rest is the node's view (scores is per node)

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return self.scores(request, [node])[0]

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        key = request.model_key
        config = self.config
        other, saturated = config.other_models, config.saturated
        out = []
        for node in nodes:  # empty dicts are skipped before .get: this runs per node
            mine = node.in_flight_by_model.get(key, 0)
            waiting = node.queued_by_model
            queued = waiting.get(key, 0) if waiting else 0
            learned = node.learned_parallel
            slots = node.num_parallel or (learned and learned.get(key)) or node.assumed_parallel
            if mine < slots and not queued:
                busy = mine + other * (node.in_flight - mine)
                free = 1.0 - 0.5 * busy / slots
                out.append(free if free > 0.5 else 0.5)  # max(0.5, free)
            else:
                out.append(saturated / (1.0 + queued / slots))
        return out


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [QueueDepthSignal]
