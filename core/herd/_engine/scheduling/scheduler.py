"""Choosing a node and getting the request onto it.

rank (see :mod:`.ranking`) -> admit into that node's queue (see :mod:`.queues`)
-> shape the body for that node (:mod:`herd._engine.shaping`) -> open it. A failure before
the first byte releases the slot, backs off, re-ranks and admits the request through the
next node's queue, so retries respect every node's concurrency too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from herd._engine.fleet.registry import Fleet, FleetNode
from herd._engine.scheduling.auto_pull import AutoPuller
from herd._engine.scheduling.queues import QueueBoard, QueueFull, Slot, client_key
from herd._engine.scheduling.ranking import Decision, Ranker
from herd._engine.scheduling.reaper import ZombieReaper
from herd._engine.scheduling.refusals import nothing_to_try, router_exhausted, with_attempts
from herd._engine.shaping import INFERENCE_ENDPOINTS, BodyShaper
from herd.errors import HerdError, model_not_found
from herd.interfaces import (
    FallbackPolicy,
    InferenceRequest,
    NodeFailure,
    Signal,
    UpstreamReply,
)
from herd.net import out_of_local_resources
from herd.settings import RoutingSettings
from herd.trace import AttemptRecord

__all__ = ["Attempt", "Decision", "ReplyCheck", "Scheduler", "substituted_note"]

log = logging.getLogger("herd.scheduling")

#: Looks at a node's reply before its first byte goes out: why it is broken, "" when not
#: (a broken one is closed and counts as the node's failure, see Scheduler.open).
ReplyCheck = Callable[[UpstreamReply], str]

_BUSY = 503  # a node's own "server busy": not its fault, so it is not excluded
_BUSY_TURNS = 8  # "busy" answers a request may get before they count as retries
_HOLD_RETRY_AFTER_S = 5
_RELOOK_S = 5.0
# image and speech-to-text jobs wait in the same per-node queues as text (no body shaping)
_QUEUED_KINDS = frozenset({"image", "stt"})


@dataclass(slots=True)
class Attempt:
    """A request opened on a node: the reply up to its first byte, and how it got there."""

    node: FleetNode
    reply: UpstreamReply
    decision: Decision
    retries: int
    tried: list[str]
    attempts: list[AttemptRecord]
    slot: Slot
    board: QueueBoard
    queue_ms: float = 0.0

    @property
    def score(self) -> float:
        """The serving node's total score, in [0, 1] (``X-Herd-Score``)."""
        return self.decision.total_of(self.node.name)

    def release(self, failed: bool = False) -> None:
        """Free the node's slot; safe to call more than once."""
        self.board.release(self.slot, failed)


class Scheduler:
    """Ranks nodes with the signal plugins, queues the request and opens it on a node."""

    def __init__(
        self,
        fleet: Fleet,
        signals: list[Signal],
        fallback: FallbackPolicy,
        routing: RoutingSettings,
    ) -> None:
        self.fleet = fleet
        self.signals = signals
        self.fallback = fallback
        self.routing = routing
        self.max_retries = routing.max_retries
        self.ranker = Ranker(signals)
        self.board = QueueBoard(
            routing.max_queue_depth,
            routing.max_in_flight_per_client,
            adaptive=routing.adaptive_concurrency,
        )
        fleet.on_capacity = self.board.wake_held  # held requests look again at once
        self.shaper = BodyShaper(routing)
        self.reaper = ZombieReaper(self.board, routing.stale_timeout_s)
        self.puller = AutoPuller(fleet, routing.auto_pull_timeout_s) if routing.auto_pull else None

    def start(self) -> None:
        """Start the zombie reaper (on the running loop)."""
        self.reaper.start()

    async def stop(self) -> None:
        await self.reaper.stop()

    @property
    def reaped(self) -> int:
        """Requests the zombie reaper failed since start."""
        return self.board.reaped

    def queue_stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per node and model: pending, in_flight, done, failed, concurrency (+ source)."""
        return self.board.stats()

    def rank(self, request: InferenceRequest, capability: str = "text") -> Decision:
        """Score every node that can serve the request, best first."""
        return self.ranker.rank(request, self.fleet.views(), capability)

    def explain(self, request: InferenceRequest, capability: str = "text") -> dict[str, Any]:
        """The full ranking for a hypothetical request, without sending it."""
        requested = request.model_key
        substitute = self.substitute(request) if request.allow_fallback else None
        if substitute:
            request = dataclasses.replace(request, model_key=substitute)
        decision = self.rank(request, capability)
        ranked = []
        for view in decision.ranked:
            key = request.model_key
            ranked.append(
                {
                    "node": view.name,
                    "score": round(decision.totals[view.name], 4),
                    "signals": {k: round(v, 4) for k, v in decision.scores[view.name].items()},
                    "status": view.status,
                    "queue": {
                        "pending": view.queued_by_model.get(key, 0),
                        "in_flight": view.in_flight_by_model.get(key, 0),
                        "concurrency": view.slots,
                    },
                }
            )
        notes = list(request.notes)
        if substitute:
            notes.append(substituted_note(requested, substitute))
        return {
            "model": requested,
            "served_model": request.model_key,
            "substituted": substitute is not None,
            "weights": {s.name: s.weight for s in self.signals},
            "ranked": ranked,
            "rejected": decision.rejections,
            "notes": notes,
        }

    def open(
        self,
        request: InferenceRequest,
        capability: str = "text",
        *,
        body_model: str = "",
        check: ReplyCheck | None = None,
    ) -> Coroutine[Any, Any, Attempt]:
        """Open the request on the best node it can be admitted to, moving on after failures
        (a coroutine to await: without a per-client cap, the one that opens it, so that
        every wake-up of the request passes one level fewer).

        Args:
            request: The request; ``model_key`` is the model to serve.
            capability: The work asked of the node (``text``, ``embed``, ...).
            body_model: The model name the body must carry, when it differs from the
                client's (an alias or a substitute); shaping writes it.
            check: Looks at a reply before its first byte goes out; a problem it names (a
                broken answer) closes the reply and moves on to the next node (a 502
                :class:`NodeFailure`).

        Raises:
            HerdError: 404 when no node has the model (or an auto-pull failed), 429 over the
                client's cap, 503 when nothing can serve it or every queue stayed full for
                ``routing.hold_timeout_s``, 502 when every node tried failed.
        """
        inference = request.endpoint in INFERENCE_ENDPOINTS
        if inference and self.board.max_in_flight_per_client:
            return self._open_counted(request, capability, body_model, check)
        return self._open(request, capability, inference, body_model, check)

    async def _open_counted(
        self,
        request: InferenceRequest,
        capability: str,
        body_model: str,
        check: ReplyCheck | None,
    ) -> Attempt:
        """:meth:`open`, counted against the client's cap while it waits and runs."""
        client = client_key(request)
        self.board.enter(client)
        try:
            attempt = await self._open(request, capability, True, body_model, check)
        except BaseException:
            self.board.leave(client)
            raise
        attempt.slot.client = client
        return attempt

    async def _open(
        self,
        request: InferenceRequest,
        capability: str,
        inference: bool,
        body_model: str,
        check: ReplyCheck | None,
    ) -> Attempt:
        decision = self.rank(request, capability)
        if (
            not decision.ranked
            and self.puller is not None
            and inference
            and not self._anywhere(request)
        ):
            await self.puller.pull(request, capability)
            decision = self.rank(request, capability)
        if not decision.ranked:
            raise self._nothing_to_try(request, decision, capability)
        key = request.model_key
        original = request.raw_body
        tried: list[str] = []
        excluded: list[str] = []
        attempts: list[AttemptRecord] = []
        failures: list[str] = []
        all_not_found = True
        busy = 0  # the node's "full" answers so far
        queue_s = 0.0
        while True:
            admit_started = time.monotonic()
            queued = inference or request.kind in _QUEUED_KINDS
            slot, decision = await self._admit(request, decision, excluded, capability, queued)
            queue_s += time.monotonic() - admit_started
            if slot is None:
                break
            view = slot.view
            node = self.fleet.nodes[view.name]
            tried.append(node.name)
            if inference:
                self.shaper.shape(request, view, original, body_model)
                if key not in view.loaded and key not in view.loading:
                    view.loading[key] = self.shaper.context_for(request, view)
            started = time.time()
            try:
                reply = await node.backend_for(capability, key).open(request)
                if check is not None:
                    problem = check(reply)
                    if problem:
                        await reply.aclose()
                        raise NodeFailure(f"node {node.name}: {problem}", status=502)
            except NodeFailure as failure:
                if out_of_local_resources(failure):  # the router's own trouble: not the node's
                    self.board.release(slot, failed=False)
                    raise with_attempts(router_exhausted(node.name, failure), attempts) from None
                if failure.status == _BUSY:  # full: fewer at once there from now on, and
                    slot.queue.refused(slot)  # the request waits its turn again (no retry
                    busy += 1  # spent on it, up to _BUSY_TURNS)
                self.board.release(slot, failed=True)
                attempts.append(
                    AttemptRecord(node.name, started, time.time(), failure.message, failure.status)
                )
                failures.append(f"{node.name}: {failure.message}")
                all_not_found = all_not_found and failure.not_found
                if failure.not_found:
                    view.models.pop(key, None)
                    view.loaded.pop(key, None)
                elif failure.status == 0:
                    self.fleet.note_request_failure(node, failure.message)
                if not failure.retryable:
                    raise with_attempts(HerdError(502, failure.message), attempts) from None
                if failure.status != _BUSY:
                    excluded.append(node.name)
                log.info("request %s: %s failed (%s)", request.request_id, node.name, failure)
                if len(tried) - min(busy, _BUSY_TURNS) > self.max_retries:
                    break
                backoff = self.routing.retry_backoff_s * (2 ** (len(tried) - 1))
                if backoff > 0:
                    await asyncio.sleep(min(1.0, backoff))
                decision = self.rank(request, capability)
                continue
            except BaseException as exc:
                # the client went away (cancelled) while the node was answering: that is
                # not the node's failure
                self.board.release(slot, failed=not isinstance(exc, asyncio.CancelledError))
                raise
            slot.reply = reply
            attempts.append(AttemptRecord(node.name, started, time.time(), "", reply.status))
            # (positional: a Python class called with keywords packs and unpacks a dict)
            return Attempt(
                node,  # node
                reply,  # reply
                decision,  # decision
                len(tried) - 1,  # retries
                tried,  # tried
                attempts,  # attempts
                slot,  # slot
                self.board,  # board
                queue_s * 1000.0,  # queue_ms
            )
        if not tried:
            raise self._nothing_to_try(request, decision, capability)
        if all_not_found:
            raise with_attempts(model_not_found(request.model), attempts)
        raise with_attempts(
            HerdError(
                502, "no node could serve the request: " + "; ".join(failures), retry_after=1
            ),
            attempts,
        )

    async def _admit(
        self,
        request: InferenceRequest,
        decision: Decision,
        excluded: list[str],
        capability: str,
        queued: bool,
    ) -> tuple[Slot | None, Decision]:
        """A slot on the best node that has room, holding the request while none has.

        Requests that do not queue (metadata calls such as show) get a slot that counts
        nothing. Returns ``(None, decision)`` when every candidate has been excluded.
        """
        hold_until = 0.0
        while True:
            full: list[str] = []
            while True:
                view = self.fallback.next_node(request, decision.ranked, excluded + full)
                if view is None:
                    break
                if not queued:
                    return self.board.free_pass(view, request), decision
                try:
                    return await self.board.acquire(view, request), decision
                except QueueFull:
                    full.append(view.name)
            if not full:
                return None, decision
            now = time.monotonic()
            if not hold_until:
                hold_until = now + self.routing.hold_timeout_s
            remaining = hold_until - now
            if remaining <= 0:
                raise HerdError(
                    503,
                    f"every queue for model '{request.model}' is full; try again later",
                    retry_after=_HOLD_RETRY_AFTER_S,
                    code="queue_full",
                )
            # Woken when a slot frees or a node comes online; the cap only covers changes
            # nobody announces (a learned concurrency limit that grew, say).
            await self.board.wait_for_room(min(remaining, _RELOOK_S))
            decision = self.rank(request, capability)

    def _anywhere(self, request: InferenceRequest) -> bool:
        """True when some node, in any state, has the model."""
        return any(n.view.has_model(request.model_key) for n in self.fleet.nodes.values())

    def substitute(self, request: InferenceRequest) -> str | None:
        """Another model to serve when the requested one is loaded nowhere, if allowed.

        Pure: the caller decides what to do with the answer (the Exchange serves it).
        """
        vram_fallback = self.routing.vram_fallback
        if not (request.fallback_models or vram_fallback):
            return None
        key = request.model_key
        views = [
            n.view
            for n in self.fleet.nodes.values()
            if n.view.status == "online" and not n.view.draining
        ]
        if any(key in v.loaded or key in v.loading for v in views):
            return None
        substitute = self.fallback.substitute(request, views, vram_fallback)
        if substitute is None or substitute == key:
            return None
        return substitute

    def _nothing_to_try(
        self, request: InferenceRequest, decision: Decision, capability: str
    ) -> HerdError:
        return nothing_to_try(self.fleet, request, decision, capability)


def substituted_note(requested: str, served: str) -> str:
    """The trace note for a model served in place of the requested one."""
    return f"served {served} instead of {requested}: {requested} is loaded nowhere"
