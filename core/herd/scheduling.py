"""Choosing a node: candidates -> reject -> score -> rank -> attempt, with fallback."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from herd.errors import HerdError, model_not_found
from herd.fleet import Fleet, FleetNode
from herd.interfaces import (
    FallbackPolicy,
    InferenceRequest,
    NodeFailure,
    NodeView,
    Signal,
    UpstreamReply,
)
from herd.trace import AttemptRecord

__all__ = ["Attempt", "Decision", "Scheduler"]

log = logging.getLogger("herd.scheduling")


@dataclass(slots=True)
class Decision:
    """A ranking of the nodes for one request, with the reasons behind it."""

    ranked: list[NodeView]
    totals: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    rejections: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Attempt:
    """A request opened on a node: the reply up to its first byte, and how it got there."""

    node: FleetNode
    reply: UpstreamReply
    decision: Decision
    retries: int
    tried: list[str]
    attempts: list[AttemptRecord]

    @property
    def score(self) -> float:
        return self.decision.totals.get(self.node.name, 0.0)


class Scheduler:
    """Ranks nodes with the signal plugins and opens the request on the best one."""

    def __init__(
        self,
        fleet: Fleet,
        signals: list[Signal],
        fallback: FallbackPolicy,
        max_retries: int,
    ) -> None:
        self.fleet = fleet
        self.signals = signals
        self.fallback = fallback
        self.max_retries = max_retries

    def rank(self, request: InferenceRequest, capability: str = "text") -> Decision:
        """Score every online node that can serve the request, best first."""
        decision = Decision(ranked=[])
        key = request.model_key
        candidates: list[tuple[float, int, NodeView]] = []
        for index, node in enumerate(self.fleet.nodes.values()):
            view = node.view
            if view.status != "online":
                decision.rejections[view.name] = f"node {view.status}"
                continue
            if capability not in view.capabilities:
                decision.rejections[view.name] = f"no {capability} capability"
                continue
            if not view.has_model(key):
                decision.rejections[view.name] = "model not on this node"
                continue
            reason = None
            per_signal: dict[str, float] = {}
            total = 0.0
            for signal in self.signals:
                reason = signal.reject(request, view)
                if reason is not None:
                    reason = f"{signal.name}: {reason}"
                    break
                value = signal.score(request, view)
                per_signal[signal.name] = value
                total += value * signal.weight
            if reason is not None:
                decision.rejections[view.name] = reason
                continue
            decision.scores[view.name] = per_signal
            decision.totals[view.name] = total
            candidates.append((-total, index, view))
        candidates.sort(key=lambda c: (c[0], c[1]))
        decision.ranked = [c[2] for c in candidates]
        return decision

    async def open(self, request: InferenceRequest, capability: str = "text") -> Attempt:
        """Open the request on the best node, moving on when a node fails before its first byte.

        Raises:
            HerdError: 404 when no node has the model, 503 when none is online to serve
                it, 502 when every node tried failed.
        """
        decision = self.rank(request, capability)
        if not decision.ranked:
            raise self._nothing_to_try(request, capability)
        tried: list[str] = []
        attempts: list[AttemptRecord] = []
        failures: list[str] = []
        all_not_found = True
        node_view: NodeView | None = decision.ranked[0]
        while node_view is not None:
            node = self.fleet.nodes[node_view.name]
            tried.append(node.name)
            view = node.view
            view.in_flight += 1
            by_model = view.in_flight_by_model
            by_model[request.model_key] = by_model.get(request.model_key, 0) + 1
            started = time.time()
            try:
                reply = await node.backend.open(request)
            except NodeFailure as failure:
                attempts.append(
                    AttemptRecord(node.name, started, time.time(), failure.message, failure.status)
                )
                self.release(view, request.model_key)
                failures.append(f"{node.name}: {failure.message}")
                all_not_found = all_not_found and failure.not_found
                if failure.not_found:
                    view.models.pop(request.model_key, None)
                    view.loaded.pop(request.model_key, None)
                elif failure.status == 0:
                    self.fleet.mark_unreachable(view, failure.message)
                if not failure.retryable:
                    raise HerdError(502, failure.message) from None
                log.info("request %s: %s failed (%s)", request.request_id, node.name, failure)
                if len(tried) > self.max_retries:
                    break
                node_view = self.fallback.next_node(request, decision.ranked, tried)
                continue
            except BaseException:
                self.release(view, request.model_key)
                raise
            attempts.append(AttemptRecord(node.name, started, time.time(), "", reply.status))
            return Attempt(
                node=node,
                reply=reply,
                decision=decision,
                retries=len(tried) - 1,
                tried=tried,
                attempts=attempts,
            )
        request_attempts = attempts  # kept for the rejection trace
        if all_not_found:
            raise _with_attempts(model_not_found(request.model), request_attempts)
        raise _with_attempts(
            HerdError(
                502, "no node could serve the request: " + "; ".join(failures), retry_after=1
            ),
            request_attempts,
        )

    def release(self, view: NodeView, model_key: str) -> None:
        """Take a finished request off a node's in-flight counts."""
        view.in_flight -= 1
        by_model = view.in_flight_by_model
        left = by_model.get(model_key, 1) - 1
        if left > 0:
            by_model[model_key] = left
        else:
            by_model.pop(model_key, None)

    def _nothing_to_try(self, request: InferenceRequest, capability: str) -> HerdError:
        key = request.model_key
        holders = [n.view for n in self.fleet.nodes.values() if n.view.has_model(key)]
        if not holders:
            return model_not_found(request.model)
        if not any(v.status == "online" for v in holders):
            names = ", ".join(v.name for v in holders)
            return HerdError(
                503,
                f"model '{request.model}' is only on nodes that are offline now ({names})",
                retry_after=5,
                code="no_node_available",
            )
        return HerdError(
            503,
            f"no node can serve model '{request.model}' now",
            retry_after=1,
            code="no_node_available",
        )


def _with_attempts(error: HerdError, attempts: list[AttemptRecord]) -> HerdError:
    error.attempts = attempts
    return error
