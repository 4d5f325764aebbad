"""Session-affinity signal: a conversation goes back to the node that has it cached."""

from __future__ import annotations

import time
from collections.abc import Sequence

from herd import InferenceRequest, NodeView, RequestTrace, Signal, hookimpl


def session_of(request: InferenceRequest) -> str:
    """The conversation key: a ``session:`` tag, else (for a later turn of a chat) the
    hash of its opening messages. A first turn has no home to go back to yet."""
    for tag in request.tags:
        if tag.startswith("session:"):
            return tag
    return request.session if request.follow_up else ""


class SessionAffinitySignal(Signal):
    """The node that served the conversation's last turn (its KV cache holds the prefix)
    scores 1.0 and the others 0.0; a request with no known conversation (a first turn, or
    one not seen within ``ttl_s``) scores 0.5 everywhere. When the home node is saturated
    (as many requests as slots) and carries more than ``max_share_above_mean`` above the
    candidates' mean load, the conversation moves: everyone scores 0.5, and its next
    turn's node becomes its home.
    """

    name = "session-affinity"
    reads = frozenset({"in_flight", "queued_by_model"})  # what node_values reads

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 1.5
        max_share_above_mean: float = 0.5
        ttl_s: float = 1800.0
        max_sessions: int = 10_000

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._homes: dict[str, tuple[str, float]] = {}
        self._home: str | None = None
        self._at = 0
        self._settled: tuple = (None, None, "", None, [])  # values, home, model, _home, scores
        self._one_hot: tuple[list[float] | None, int] = (None, -1)  # the last built, its 1.0
        self._halves: list[float] = []  # the last "no home" scores given (no one changes them)

    def home_of(self, session: str) -> str | None:
        entry = self._homes.get(session) if session else None
        if entry is None or time.monotonic() - entry[1] > self.config.ttl_s:
            return None
        return entry[0]

    def prepare(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> None:
        self._home = home = self.home_of(session_of(request))
        if home is None:
            return
        node = next((n for n in nodes if n.name == home), None)
        if node is None:
            self._home = None
            return
        load = node.in_flight + sum(node.queued_by_model.values())
        if load < node.slots_for(request.model_key):
            return  # not saturated: it stays home, however the others are loaded
        total = sum(n.in_flight for n in nodes)
        total += sum(sum(n.queued_by_model.values()) for n in nodes if n.queued_by_model)
        mean = total / len(nodes)
        if load > mean * (1.0 + self.config.max_share_above_mean):  # crowded
            self._home = None

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str:
        return "load"  # a node's load: the same for every request

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[int]:
        return [node.in_flight + sum(node.queued_by_model.values()) for node in nodes]

    def settle(
        self, request: InferenceRequest, nodes: Sequence[NodeView], values: list[int]
    ) -> tuple[list[float], None]:
        """``prepare`` and ``scores`` over the nodes' loads (see :meth:`node_values`)."""
        self._home = home = self.home_of(session_of(request))
        if home is None:
            return self._no_home(len(nodes)), None
        last = self._settled
        if values is last[0] and home == last[1] and request.model_key == last[2]:
            self._home = last[3]
            return last[4], None  # the same loads, home and model: the same scores
        scores = self._settle(request, nodes, values, home)
        self._settled = (values, home, request.model_key, self._home, scores)
        return scores, None

    def _settle(
        self, request: InferenceRequest, nodes: Sequence[NodeView], values: list[int], home: str
    ) -> list[float]:
        at = self._at  # where the home was last time: most often still there
        if at >= len(nodes) or nodes[at].name != home:
            at = next((i for i, node in enumerate(nodes) if node.name == home), None)
            if at is not None:
                self._at = at
        if at is None:
            self._home = None
            return self._no_home(len(nodes))
        load = values[at]
        if load >= nodes[at].slots_for(request.model_key):  # saturated: crowded?
            mean = sum(values) / len(nodes)
            if load > mean * (1.0 + self.config.max_share_above_mean):
                self._home = None
                return self._no_home(len(nodes))
        last = self._settled[4]  # the same home as last time: the same scores, by identity
        one_hot, row = self._one_hot  # (only here are such lists built: no scan needed)
        if last is one_hot and row == at and len(last) == len(nodes):
            return last
        scores = [0.0] * len(nodes)
        scores[at] = 1.0
        self._one_hot = (scores, at)
        return scores

    def _no_home(self, count: int) -> list[float]:
        """0.5 for each of ``count`` nodes: the same list as last time when as long, so the
        ranker sees by identity that the column did not move."""
        halves = self._halves
        if len(halves) != count:
            halves = self._halves = [0.5] * count
        return halves

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return self.scores(request, [node])[0]

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        home = self._home
        if home is None:
            return [0.5] * len(nodes)
        return [1.0 if node.name == home else 0.0 for node in nodes]

    def observe(self, trace: RequestTrace) -> None:
        if not trace.node or trace.status != "completed":
            return
        session = trace.session  # unless a session: tag names it (a loop: per request)
        for tag in trace.tags:
            if tag.startswith("session:"):
                session = tag
                break
        if not session:
            return
        homes = self._homes
        homes.pop(session, None)
        homes[session] = (trace.node, time.monotonic())
        while len(homes) > self.config.max_sessions:
            del homes[next(iter(homes))]


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [SessionAffinitySignal]
