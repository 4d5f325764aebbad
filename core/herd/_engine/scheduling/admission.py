"""Admission across replicas: a :class:`QueueBoard`'s slots as leases in the shared store.

Only in cluster mode (``cluster.redis_url``): the board hands :meth:`SharedAdmission.acquire`
every request and tells :meth:`SharedAdmission.released` about every freed slot. A request
takes a lease in one atomic call; when none is free its ticket waits in the store's shared
first-come queue, and it asks again when any replica frees a slot there (a message on the
``freed`` channel) or every ``poll_s`` at the latest, which also keeps its ticket alive.
While the store is unreachable the same rules run on :class:`~herd.shared_state.LocalState`
with the node's slots split between the last known number of replicas.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING

from herd._engine.scheduling.queues import QueueBoard, QueueFull, Slot, client_key
from herd.errors import HerdError
from herd.interfaces import InferenceRequest, NodeView
from herd.shared_state import Admission, Lease, StateUnavailable

if TYPE_CHECKING:
    from herd._engine.cluster import ClusterLink

__all__ = ["RELEASE_DELAY_S", "SharedAdmission"]

RELEASE_DELAY_S = 0.005


class SharedAdmission:
    """Leases for the slots this replica holds, and the requests waiting for one."""

    def __init__(self, link: ClusterLink) -> None:
        self.link = link
        self.leases: dict[Slot, Lease] = {}
        self.poll_s = min(0.5, link.settings.lease_ttl_s / 4)
        self._wakers: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self.board: QueueBoard | None = None
        self._releasing: list[Lease] = []  # freed, not yet told to the store
        self._others: dict[tuple[str, str], tuple[int, float]] = {}  # other replicas' load
        self.waiting: dict[tuple[str, str], int] = {}  # this replica's requests waiting
        self._bounced: dict[str, None] = {}  # request ids sent elsewhere once (recent ones)

    def held(self) -> list[Lease]:
        """The leases of the requests running on this replica (to renew)."""
        return list(self.leases.values())

    async def acquire(self, board: QueueBoard, view: NodeView, request: InferenceRequest) -> Slot:
        """A slot on ``view`` for the request's model, shared with every replica.

        Raises:
            QueueFull: ``max_queue_depth`` requests already wait there (all replicas).
            HerdError: 429 when the client holds its cap of slots across replicas.
        """
        model = request.model_key
        queue = board.queue(view, model)
        queue.kind = request.kind
        cap = board.max_in_flight_per_client
        lease = Lease(view.name, model, uuid.uuid4().hex, client_key(request) if cap else "")
        queued = view.queued_by_model
        key = (view.name, model)
        waiting = False
        try:
            while True:
                answer = await self._admit(lease, view.slots, board.max_queue_depth, cap)
                if answer.outcome == "granted":
                    # Mirrored locally (no I/O), so degraded mode counts it from the start.
                    await self.link.local.renew((lease,))
                    slot = board._start(queue, request)
                    self.leases[slot] = lease
                    self._learn(view, model, answer.active)
                    return slot
                self._learn(view, model, answer.active)
                queued_now = answer.outcome == "queued" and not waiting
                if queued_now and self._bounce(view, model, request):
                    # This replica ranked the node by stale figures: the answer showed it
                    # busy while another looks free. Let the scheduler try that one.
                    raise QueueFull(view.name)
                if answer.outcome == "capped":
                    raise _capped(cap)
                if answer.outcome == "full" and not waiting:
                    raise QueueFull(view.name)
                if not waiting:  # "full" while waiting: the store changed; keep trying
                    waiting = True
                    queued[model] = queued.get(model, 0) + 1
                    self.waiting[key] = self.waiting.get(key, 0) + 1
                await self._wait(key)
        except BaseException:
            # Drop the ticket, or a lease granted by a call this request did not see end.
            self.link.spawn(self._drop(lease))
            raise
        finally:
            if waiting:
                for counts, name in ((queued, model), (self.waiting, key)):
                    left = counts.get(name, 0) - 1
                    if left > 0:
                        counts[name] = left
                    else:
                        counts.pop(name, None)

    def released(self, slot: Slot) -> None:
        """The board freed ``slot``: give its lease back, within ``RELEASE_DELAY_S``.

        Releases wait that long for the next admission, which carries them in its own
        round trip (released first, so the slot is free for it): one round trip per
        request instead of two under steady load.
        """
        lease = self.leases.pop(slot, None)
        if lease is None:
            return
        self._releasing.append(lease)
        if len(self._releasing) == 1:
            asyncio.get_running_loop().call_later(RELEASE_DELAY_S, self.flush_releases)

    def flush_releases(self) -> None:
        """Give back the freed leases no admission carried yet."""
        leases, self._releasing = self._releasing, []
        for lease in leases:
            self.link.spawn(self._drop(lease))

    # -- what the signals see ----------------------------------------------------------

    def _learn(self, view: NodeView, model: str, active: int) -> None:
        """Count the other replicas' requests on the node, as the last answer said, in its
        in-flight figures, so the signals rank by the whole cluster's load. This replica's
        own slots keep counting themselves; the others' part is forgotten by
        :meth:`forget_stale` when no answer refreshed it."""
        if self.board is None:
            return
        queue = self.board.queue(view, model)
        others = max(0, active - queue.in_flight)
        key = (view.name, model)
        before = self._others.get(key, (0, 0.0))[0]
        if others:
            self._others[key] = (others, time.monotonic())
        else:
            self._others.pop(key, None)
        if others != before:
            self._show(view, model, others - before)

    def forget_stale(self, max_age: float) -> None:
        """Drop the others' load that no answer refreshed for ``max_age`` seconds."""
        if self.board is None:
            return
        now = time.monotonic()
        for key, (others, seen) in list(self._others.items()):
            if now - seen < max_age:
                continue
            del self._others[key]
            node, model = key
            queue = self.board.queues.get(node, {}).get(model)
            if queue is not None:
                self._show(queue.view, model, -others)

    def _bounce(self, busy: NodeView, model: str, request: InferenceRequest) -> bool:
        """Whether to send the request elsewhere rather than queue: once per request at
        most (the other node may not suit it: the scheduler then holds it a moment and
        it queues here), and only when another node looks free."""
        if request.kind != "text" or request.request_id in self._bounced:
            return False
        if not self._free_elsewhere(busy, model):
            return False
        self._bounced[request.request_id] = None
        if len(self._bounced) > 1024:
            del self._bounced[next(iter(self._bounced))]
        return True

    def _free_elsewhere(self, busy: NodeView, model: str) -> bool:
        """Another usable node has the model and, as far as this replica knows, a free
        slot for it."""
        for node in self.link.gateway.fleet.nodes.values():
            view = node.view
            if view is busy or view.draining or view.status != "online":
                continue
            room = view.in_flight_by_model.get(model, 0) < view.slots
            if room and not view.queued_by_model.get(model) and view.has_model(model):
                return True
        return False

    @staticmethod
    def _show(view: NodeView, model: str, change: int) -> None:
        total = view.in_flight_by_model.get(model, 0) + change
        if total > 0:
            view.in_flight_by_model[model] = total
        else:
            view.in_flight_by_model.pop(model, None)
        view.in_flight = max(0, view.in_flight + change)

    def wake(self, node: str, model: str) -> None:
        """A slot of ``node`` for ``model`` freed somewhere: waiters ask again."""
        waiters = self._wakers.pop((node, model), None)
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)
        if self.board is not None:
            self.board.wake_held()

    async def _admit(self, lease: Lease, slots: int, max_waiting: int, cap: int) -> Admission:
        store, limit = self.link.admission_store(slots)
        releasing: list[Lease] = []
        if store is self.link.store:  # degraded: the flush timer owes them to the store
            releasing, self._releasing = self._releasing, []
        for done in releasing:
            await self.link.local.release(done)
        try:
            answer = await store.admit(lease, limit, max_waiting, cap, releasing=releasing)
            for done in releasing:
                self.wake(done.node, done.model)
            return answer
        except StateUnavailable as exc:
            self.link.degrade(exc)
            self.link.owed.extend(releasing)
            store, limit = self.link.admission_store(slots)
            return await store.admit(lease, limit, max_waiting, cap)

    async def _drop(self, lease: Lease) -> None:
        await self.link.local.release(lease)
        if self.link.degraded:
            self.link.owed.append(lease)  # released there on rejoining, not a TTL later
        else:
            try:
                await self.link.store.release(lease)
            except StateUnavailable as exc:
                self.link.degrade(exc)
                self.link.owed.append(lease)
        self.wake(lease.node, lease.model)

    async def _wait(self, key: tuple[str, str]) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wakers.setdefault(key, []).append(waiter)
        try:
            await asyncio.wait((waiter,), timeout=self.poll_s)
        finally:
            waiters = self._wakers.get(key)
            if waiters and waiter in waiters:
                waiters.remove(waiter)


def _capped(cap: int) -> HerdError:
    return HerdError(
        429,
        f"too many requests in flight for this client across the routers (limit {cap})",
        retry_after=1,
        code="rate_limited",
    )
