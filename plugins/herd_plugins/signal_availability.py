"""Availability signal: how reliably the node has answered lately."""

from __future__ import annotations

import time
from collections.abc import Sequence

from herd import InferenceRequest, NodeView, RequestTrace, Signal, hookimpl

_NOT_THE_NODES_FAULT = (404, 503)  # model not there; the node's own "too busy"


class AvailabilitySignal(Signal):
    """Scores the node's recent success ratio: attempts that answered against attempts
    that failed (connection errors, timeouts, 5xx, streams that broke or were reaped),
    each weighing half as much every ``half_life_s``, with ``prior_successes`` so one
    failure does not condemn a node. Times ``degraded`` while the node misses heartbeats,
    and less for a while (up to ``rejoin_penalty``, fading over ``rejoin_window_s``) after
    it came back from being offline: a flapping node is not trusted at once.
    """

    name = "availability"
    reads = frozenset({"name", "online_since", "status"})  # what node_values reads
    request_reads = frozenset()  # its key and settle read no request field

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 1.0
        half_life_s: float = 300.0
        prior_successes: float = 5.0
        degraded: float = 0.5
        rejoin_penalty: float = 0.3
        rejoin_window_s: float = 120.0

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._tally: dict[str, list[float]] = {}  # node -> [good, bad, monotonic time]
        self._first_online: dict[str, float] = {}

    def _decayed(self, node: str, now: float) -> list[float]:
        tally = self._tally.get(node)
        if tally is None:
            tally = self._tally[node] = [0.0, 0.0, now]
        elif now > tally[2]:
            fade = 0.5 ** ((now - tally[2]) / self.config.half_life_s)
            tally[0] *= fade
            tally[1] *= fade
            tally[2] = now
        return tally

    def prepare(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> None:
        first_online = self._first_online
        for node in nodes:  # a node's first time online, noted when first a candidate
            if node.online_since and node.name not in first_online:
                first_online[node.name] = node.online_since

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str:
        return "availability"  # the node's record, whatever the request

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list:
        """Scores, but None where the clock moves them: recent failures fade, and a node
        back online less than ``rejoin_window_s`` ago (or not long) is trusted more."""
        tallies, first_online = self._tally, self._first_online
        degraded = self.config.degraded
        out: list[float | None] = []
        for node in nodes:
            tally = tallies.get(node.name) if tallies else None
            since = node.online_since
            if since and node.name not in first_online:
                first_online[node.name] = since  # as scores() would note it
            if (tally is not None and tally[1] > 0.01) or (
                since and since > first_online[node.name]
            ):
                out.append(None)  # settle asks scores() each time
            else:
                out.append(1.0 * degraded if node.status == "degraded" else 1.0)
        return out

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return self.scores(request, [node])[0]

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        config = self.config
        tallies, first_online = self._tally, self._first_online
        out = []
        for node in nodes:
            value = 1.0
            tally = tallies.get(node.name) if tallies else None
            if tally is not None and tally[1] > 0.01:
                good, bad, then = tally  # faded to now, without writing it back: a score
                now = time.monotonic()  # is the same however often it was asked for
                if now > then:
                    fade = 0.5 ** ((now - then) / config.half_life_s)
                    good *= fade
                    bad *= fade
                prior = config.prior_successes
                value = (good + prior) / (good + bad + prior)
            if node.status == "degraded":
                value *= config.degraded
            since = node.online_since
            if since:
                first = first_online.get(node.name)
                if first is None:
                    first_online[node.name] = since
                elif since > first and time.time() - since < config.rejoin_window_s:
                    fading = 1.0 - (time.time() - since) / config.rejoin_window_s
                    value *= 1.0 - config.rejoin_penalty * fading
            out.append(value)
        return out

    def observe(self, trace: RequestTrace) -> None:
        now = time.monotonic()
        for attempt in trace.attempts:
            if attempt.status in _NOT_THE_NODES_FAULT:
                continue
            self._decayed(attempt.node, now)[1 if attempt.error else 0] += 1.0
            self.invalidate(attempt.node)
        if trace.status == "failed" and trace.node and trace.http_status < 400:
            self._decayed(trace.node, now)[1] += 1.0  # broke after its first byte
            self.invalidate(trace.node)


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [AvailabilitySignal]
