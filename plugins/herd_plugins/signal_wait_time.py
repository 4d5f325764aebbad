"""Wait-time signal: the estimated wait for a first token, learned from the traces."""

from __future__ import annotations

import time
from collections.abc import Sequence

from herd import InferenceRequest, NodeView, RequestTrace, Signal, hookimpl, normalize_model_name

GB = 1e9


class RunningQuantile:
    """An exponentially weighted estimate of one quantile of a stream of durations.

    Each sample moves the estimate up by ``rate * q * scale`` when above it and down by
    ``rate * (1 - q) * scale`` when not, ``scale`` being the running mean: it settles where
    a fraction ``q`` of recent samples lie below it, and old samples fade geometrically.
    """

    __slots__ = ("mean", "value")

    def __init__(self, first: float) -> None:
        self.mean = first
        self.value = first

    def add(self, sample: float, q: float, rate: float) -> None:
        self.mean += rate * (sample - self.mean)
        step = rate * max(self.mean, 1e-3)
        self.value = max(0.0, self.value + step * (q - (1.0 if sample <= self.value else 0.0)))


class NodeModelTimes:
    """What one node has shown for one model: service, first-token and load times."""

    __slots__ = ("first_token", "load", "service")

    def __init__(self) -> None:
        self.service: RunningQuantile | None = None
        self.first_token: RunningQuantile | None = None
        self.load: RunningQuantile | None = None


class WaitTimeSignal(Signal):
    """Scores ``half_score_s / (half_score_s + wait)``: 1.0 for no wait, 0.5 for a wait of
    ``half_score_s``. The wait is the node's time to a first token for the model, plus the
    load time when the model is not in memory, plus a share of one service time per request
    ahead of this one in the node's queue. Every duration is a running ``quantile`` per node
    and model, learned from finished requests; priors stand in until there are some. A
    model that left memory less than ``warm_window_s`` ago loads ``warm_load_factor`` times
    as long (its file is still in the disk cache); one being loaded already, half as long.
    """

    name = "wait-time"

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 2.0
        half_score_s: float = 10.0
        quantile: float = 0.75
        learning_rate: float = 0.1
        prior_service_s: float = 8.0
        prior_first_token_s: float = 0.5
        prior_load_s_per_gb: float = 1.0
        warm_load_factor: float = 0.3
        warm_window_s: float = 900.0

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._times: dict[str, dict[str, NodeModelTimes]] = {}  # model -> node -> times
        self._model_service: dict[str, RunningQuantile] = {}

    def estimate(self, request: InferenceRequest, node: NodeView) -> float:
        """Seconds until this request's first token on ``node``."""
        return self._estimates(request.model_key, [node])[0]

    def _estimates(self, key: str, nodes: Sequence[NodeView]) -> list[float]:
        """Seconds until the first token on each node (one loop: it runs per request)."""
        config = self.config
        by_node = self._times.get(key, {})
        prior_first, prior_service = config.prior_first_token_s, config.prior_service_s
        model_service = self._model_service.get(key)
        warm_since = time.time() - config.warm_window_s
        out = []
        for node in nodes:
            times = by_node.get(node.name)
            first = times.first_token if times is not None else None
            wait = first.value if first is not None else prior_first
            slots = node.slots_for(key)
            ahead = (
                node.in_flight_by_model.get(key, 0) + node.queued_by_model.get(key, 0) - slots + 1
            )
            if ahead > 0:
                service = (times.service if times is not None else None) or model_service
                typical = service.value if service is not None else prior_service
                wait += ahead * typical / slots
            if key not in node.loaded:
                load = times.load if times is not None else None
                if load is not None:
                    load_s = load.value
                else:
                    entry = node.models.get(key)
                    load_s = config.prior_load_s_per_gb * (entry.size / GB if entry else 1.0)
                if key in node.loading:
                    load_s *= 0.5  # under way already
                elif node.unloaded_at.get(key, 0.0) > warm_since:
                    load_s *= config.warm_load_factor  # still in the disk cache
                wait += load_s
            out.append(wait)
        return out

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        half = self.config.half_score_s
        return half / (half + self.estimate(request, node))

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        half = self.config.half_score_s
        return [half / (half + wait) for wait in self._estimates(request.model_key, nodes)]

    def observe(self, trace: RequestTrace) -> None:
        if trace.status != "completed" or not trace.node or not trace.served_model:
            return
        config = self.config
        q, rate = config.quantile, config.learning_rate
        key = normalize_model_name(trace.served_model)
        by_node = self._times.setdefault(key, {})
        times = by_node.get(trace.node)
        if times is None:
            times = by_node[trace.node] = NodeModelTimes()
        load_s = trace.load_ms / 1000.0
        service_s = max(0.0, (trace.latency_ms - trace.queue_ms) / 1000.0 - load_s)
        first_s = max(0.0, (trace.ttft_ms - trace.queue_ms) / 1000.0 - load_s)
        times.service = _learn(times.service, service_s, q, rate)
        times.first_token = _learn(times.first_token, first_s, q, rate)
        self._model_service[key] = _learn(self._model_service.get(key), service_s, q, rate)
        if load_s >= 0.05:  # a real load, not the runner's bookkeeping
            times.load = _learn(times.load, load_s, q, rate)


def _learn(
    running: RunningQuantile | None, sample: float, q: float, rate: float
) -> RunningQuantile:
    if running is None:
        return RunningQuantile(sample)
    running.add(sample, q, rate)
    return running


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [WaitTimeSignal]
