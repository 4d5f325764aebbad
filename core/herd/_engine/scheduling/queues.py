"""Admission: one bounded queue per node and model, a holding area, per-client caps.

A queue lets ``view.slots_for(model)`` requests run at once (the node's ``num_parallel``,
else what :mod:`.concurrency` learns from its latency, else the assumed value); the rest
wait in arrival order, at most ``max_queue_depth`` of them. A request that finds a free
slot takes it with no await, no task and no lock: futures exist only for requests that
really wait. A freed slot is handed straight to the oldest waiter, so no request can
overtake another and a node's concurrency is never exceeded, retries included.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from herd._engine.scheduling.concurrency import AdaptiveLimit
from herd.errors import HerdError
from herd.interfaces import InferenceRequest, NodeView, UpstreamReply

__all__ = ["ModelQueue", "QueueBoard", "QueueFull", "Slot", "client_key"]


class QueueFull(Exception):
    """The queue for this node and model already has ``max_queue_depth`` waiting."""


class Slot:
    """One request's place in one node's queue for one model, until it is released.

    ``chunks`` counts the lines relayed to the client; the reaper watches it.
    """

    __slots__ = (
        "_reply",
        "chunks",
        "client",
        "cold",
        "final",
        "first_byte_at",
        "progress_at",
        "queue",
        "reaped",
        "released",
        "request",
        "seen_chunks",
        "sent_at",
        "sent_with",
    )

    def __init__(self, queue: ModelQueue, request: InferenceRequest | None) -> None:
        self.queue = queue
        self.request = request
        self._reply: UpstreamReply | None = None
        # for the adaptive limit: when it was sent, with how many in flight, its first byte
        self.sent_at = 0.0
        self.sent_with = 0
        self.first_byte_at = 0.0
        self.final: Any = None  # the final line's fields (the node's timings), set by the exchange
        self.cold = False
        self.chunks = 0
        self.seen_chunks = -1
        self.progress_at = 0.0
        self.released = False
        self.reaped = False
        self.client = ""  # set on the slot that serves: releasing it ends the client's count

    @property
    def view(self) -> NodeView:
        return self.queue.view

    @property
    def reply(self) -> UpstreamReply | None:
        """The node's reply, once its first byte came (set by the scheduler)."""
        return self._reply

    @reply.setter
    def reply(self, reply: UpstreamReply | None) -> None:
        self._reply = reply
        if reply is not None and not self.first_byte_at:
            self.first_byte_at = time.monotonic()
            if reply.status < 400:
                self.queue.warm = True


class ModelQueue:
    """One node's queue for one model: its slots in use, its waiters, its tallies."""

    __slots__ = (
        "active",
        "done",
        "failed",
        "in_flight",
        "kind",
        "limiter",
        "model",
        "view",
        "waiters",
        "warm",
    )

    def __init__(self, view: NodeView, model: str, adaptive: bool = False) -> None:
        self.view = view
        self.model = model
        self.in_flight = 0
        self.waiters: deque[tuple[asyncio.Future[Slot], InferenceRequest]] = deque()
        self.done = 0
        self.failed = 0
        self.active: set[Slot] = set()
        self.kind = "text"  # the workload of its latest request: text, embed, image, stt
        self.limiter = AdaptiveLimit(view.assumed_parallel) if adaptive else None
        # A request answered since the queue was last idle: the model is loaded, whatever
        # the last poll of /api/ps (every few seconds) said; a node keeps a busy model.
        self.warm = False

    @property
    def pending(self) -> int:
        return len(self.waiters)

    def has_free_slot(self) -> bool:
        return self.in_flight < self.view.slots_for(self.model) and not self.waiters

    def refused(self, slot: Slot) -> None:
        """The node turned ``slot``'s request away as full, with this queue's requests in
        flight (``slot``'s still among them): the learned limit comes down (when it
        learns; a limit YAML or an agent told stays)."""
        limiter, view = self.limiter, self.view
        if limiter is None or view.num_parallel or slot.released:
            return
        limiter.refused(self.in_flight)
        view.learned_parallel[self.model] = limiter.limit

    def learn(self, slot: Slot, now: float) -> None:
        """Feed a finished stream's timings to the adaptive limit (when it learns)."""
        limiter, view = self.limiter, self.view
        reply = slot.reply
        if (
            limiter is None
            or view.num_parallel  # told: nothing to learn
            or slot.cold  # a model load is no sign of a full node
            or reply is None
            or not reply.streaming
            or reply.status >= 400
            or not slot.first_byte_at
        ):
            return
        timings = _node_timings(slot.final)
        if timings is not None:  # the node's own clock: no router lag in it
            wait, per_token, service = timings
            limiter.sample(wait, per_token, slot.sent_with, _NODE_SLACK_S, service)
        else:
            chunks = slot.chunks
            service = now - slot.first_byte_at
            per_token = service / (chunks - 1) if chunks > 2 else None
            limiter.sample(
                slot.first_byte_at - slot.sent_at, per_token, slot.sent_with, -1.0, service
            )
        view.learned_parallel[self.model] = limiter.limit


_NODE_SLACK_S = 0.05


def _node_timings(final: Any) -> tuple[float, float | None, float] | None:
    """From Ollama's final line (its decoded fields): seconds the request waited inside the
    node (its total less prompt and generation; Ollama and herd-sim count a wait for a free
    slot there), seconds per generated token and seconds of generation. None without
    timings."""
    total = getattr(final, "total_duration", 0)
    if not total:
        return None
    prompt, generate, count = final.prompt_eval_duration, final.eval_duration, final.eval_count
    wait = max(0, total - prompt - generate) / 1e9
    return wait, (generate / count / 1e9 if count > 1 else None), generate / 1e9


def client_key(request: InferenceRequest) -> str:
    """Who a request counts against for the per-client cap: its API key, else its IP."""
    if request.api_key:
        return f"key:{request.api_key}"
    host, _, _ = request.client.rpartition(":")
    return host or request.client


class QueueBoard:
    """Every queue of the router, the holding area, and in-flight counts per client."""

    def __init__(
        self, max_queue_depth: int, max_in_flight_per_client: int = 0, adaptive: bool = False
    ) -> None:
        self.max_queue_depth = max_queue_depth
        self.adaptive = adaptive  # learn untold nodes' concurrency (routing.adaptive_concurrency)
        self.max_in_flight_per_client = max_in_flight_per_client
        self.queues: dict[str, dict[str, ModelQueue]] = {}
        self.reaped = 0
        self._held: list[asyncio.Future[None]] = []
        self._clients: dict[str, int] = {}
        # Cluster mode only (admission.SharedAdmission): slots are leases shared by replicas.
        self.admission: Any = None

    # -- queues -----------------------------------------------------------------------

    def queue(self, view: NodeView, model: str) -> ModelQueue:
        by_model = self.queues.get(view.name)
        if by_model is None:
            by_model = self.queues[view.name] = {}
        queue = by_model.get(model)
        if queue is None or queue.view is not view:
            queue = by_model[model] = ModelQueue(view, model, self.adaptive)
        return queue

    def has_room(self, view: NodeView, model: str) -> bool:
        """True when a request for ``model`` may join this node's queue now."""
        queue = self.queue(view, model)
        return queue.has_free_slot() or len(queue.waiters) < self.max_queue_depth

    async def acquire(self, view: NodeView, request: InferenceRequest) -> Slot:
        """A slot on ``view`` for the request's model: at once if one is free, else queued.

        Raises:
            QueueFull: ``max_queue_depth`` requests already wait there.
        """
        if self.admission is not None:
            return await self.admission.acquire(self, view, request)
        model = request.model_key
        queue = self.queue(view, model)
        queue.kind = request.kind
        if queue.has_free_slot():
            return self._start(queue, request)
        if len(queue.waiters) >= self.max_queue_depth:
            raise QueueFull(view.name)
        waiter: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        entry = (waiter, request)
        queue.waiters.append(entry)
        queued = view.queued_by_model
        queued[model] = queued.get(model, 0) + 1
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed over just as the client left
            elif entry in queue.waiters:
                queue.waiters.remove(entry)
                _decrement(queued, model)
            raise

    def free_pass(self, view: NodeView, request: InferenceRequest) -> Slot:
        """A slot outside the queues (metadata calls such as show): counts nothing."""
        slot = Slot(ModelQueue(view, request.model_key), request)
        slot.released = True
        return slot

    def _start(self, queue: ModelQueue, request: InferenceRequest) -> Slot:
        slot = Slot(queue, request)
        queue.in_flight += 1
        queue.active.add(slot)
        view, model = queue.view, queue.model
        if queue.limiter is not None:
            slot.sent_at = time.monotonic()
            slot.sent_with = queue.in_flight
            slot.cold = model not in view.loaded and not queue.warm
        view.count_in_flight(model, 1)
        return slot

    def release(self, slot: Slot, failed: bool = False) -> None:
        """Free a slot (once; later calls do nothing) and hand it to the oldest waiter."""
        if slot.released:
            return
        slot.released = True
        queue = slot.queue
        queue.active.discard(slot)
        queue.in_flight -= 1
        if not queue.in_flight:
            queue.warm = False  # idle: it may be unloaded; the polls tell
        if failed:
            queue.failed += 1
        else:
            queue.done += 1
            if queue.limiter is not None:
                queue.learn(slot, time.monotonic())
        if slot.client:
            _decrement(self._clients, slot.client)
        if self.admission is not None:
            self.admission.released(slot)
        view, model = queue.view, queue.model
        view.count_in_flight(model, -1)
        waiters = queue.waiters
        while waiters and queue.in_flight < view.slots_for(model):
            waiter, request = waiters.popleft()
            _decrement(view.queued_by_model, model)
            if not waiter.done():
                waiter.set_result(self._start(queue, request))
        if self._held:
            self._wake_held()

    def idle(self) -> bool:
        """No request is in flight, queued or held."""
        if self._held:
            return False
        return not any(q.active or q.waiters for m in self.queues.values() for q in m.values())

    def in_flight_slots(self) -> list[Slot]:
        """Every slot in use now (for the reaper)."""
        return [
            slot
            for by_model in self.queues.values()
            for q in by_model.values()
            for slot in q.active
        ]

    # -- holding area -----------------------------------------------------------------

    @property
    def held(self) -> int:
        """Requests waiting for room in any queue."""
        return len(self._held)

    async def wait_for_room(self, timeout: float) -> None:
        """Wait until some slot frees (or ``timeout`` seconds pass)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._held.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            if waiter in self._held:
                self._held.remove(waiter)

    def wake_held(self) -> None:
        """Let held requests look again (the fleet changed)."""
        if self._held:
            self._wake_held()

    def _wake_held(self) -> None:
        held, self._held = self._held, []
        for waiter in held:
            if not waiter.done():
                waiter.set_result(None)

    # -- clients ----------------------------------------------------------------------

    def enter(self, client: str) -> None:
        """Count a request against its client.

        Raises:
            HerdError: 429 when the client already has its cap in flight.
        """
        count = self._clients.get(client, 0)
        cap = self.max_in_flight_per_client
        if cap and count >= cap:
            raise HerdError(
                429,
                f"too many requests in flight for this client ({count}, limit {cap})",
                retry_after=1,
                code="rate_limited",
            )
        self._clients[client] = count + 1

    def leave(self, client: str) -> None:
        _decrement(self._clients, client)

    # -- reporting --------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per node and model: pending, in_flight, done, failed, concurrency and its source."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for node, by_model in self.queues.items():
            rows = out[node] = {}
            for model, queue in by_model.items():
                view = queue.view
                pending = len(queue.waiters)
                if self.admission is not None:  # cluster mode: they wait in the shared queue
                    pending += self.admission.waiting.get((node, model), 0)
                rows[model] = {
                    "pending": pending,
                    "in_flight": queue.in_flight,
                    "done": queue.done,
                    "failed": queue.failed,
                    "concurrency": view.slots_for(model),
                    "concurrency_source": (
                        "num_parallel"
                        if view.num_parallel
                        else "learned"
                        if model in view.learned_parallel
                        else "assumed"
                    ),
                    "kind": queue.kind,
                }
        return out


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
