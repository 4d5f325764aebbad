"""State several router replicas share: the :class:`SharedState` interface and its local form.

One router keeps everything in its own memory. Several replicas in front of one fleet
(``cluster.redis_url``) must agree on a few things, and this interface is all they share:

- **slot leases** per node and model: a request holds a lease while it runs, and the
  leases of all replicas together never exceed the node's ``num_parallel``. A lease has a
  time to live that its replica renews while the request runs, so a replica that dies
  frees its slots within that time. Requests that find no free slot wait in a shared
  first-come queue (tickets, with the same time to live);
- **per-client caps**: a client's leases across replicas, counted in the same step;
- **replicas** (heartbeats, so degraded mode can split slots) and **leader leases** (one
  replica at a time polls the agentless nodes);
- **values** (the live settings, drains) and **messages** on channels (settings changes,
  drains, relayed agent heartbeats, learned routing history, freed slots).

:class:`LocalState` implements it in memory for one process: the reference semantics,
and what a replica falls back to while the shared store is unreachable. Other stores are
plugins (``herd_register_state_stores``); the Redis/Valkey one is ``herd_contrib.cluster``.

Example:
    >>> import asyncio
    >>> async def demo():
    ...     state = LocalState(ClusterSettings(), "r1")
    ...     lease = Lease("gpu1", "llama3.2:3b", "req-1")
    ...     return (await state.admit(lease, limit=1, max_waiting=8)).outcome
    >>> asyncio.run(demo())
    'granted'
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from herd.settings import ClusterSettings

__all__ = ["RESYNC", "Admission", "Lease", "LocalState", "SharedState", "StateUnavailable"]

#: What a store calls for every message on a channel it listens to: (channel, payload).
MessageHandler = Callable[[str, bytes], None]

#: The channel name a store passes its handler after listening again: re-read shared values.
RESYNC = ""


class StateUnavailable(Exception):
    """The shared store cannot be reached (or answered too late); run on local state."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One request's claim on a slot of ``node`` for ``model`` (also its queue ticket).

    ``client`` is who the request counts against for the per-client cap ("" for none).
    """

    node: str
    model: str
    id: str
    client: str = ""


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to :meth:`SharedState.admit`.

    Attributes:
        outcome: ``granted`` (the lease holds a slot), ``queued`` (the ticket waits, at
            ``position`` from 0), ``full`` (``max_waiting`` tickets already wait) or
            ``capped`` (the client has ``client_cap`` leases already).
        active: Leases held on that node and model by every replica, after this call.
        waiting: Tickets waiting there, after this call.
    """

    outcome: Literal["granted", "queued", "full", "capped"]
    active: int = 0
    waiting: int = 0
    position: int = 0


class SharedState(abc.ABC):
    """Where replicas keep what they share. Every method may raise :class:`StateUnavailable`.

    Attributes:
        name: The store's name (``redis``, ``local``).
        schemes: URL schemes of ``cluster.redis_url`` this store serves (``redis``, ...).
    """

    name: ClassVar[str] = ""
    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: ClusterSettings, replica_id: str) -> None:
        self.settings = settings
        self.replica_id = replica_id
        self.ttl_s = settings.lease_ttl_s

    async def start(self) -> None:  # noqa: B027 - optional for a store with nothing to open
        """Connect; raise :class:`StateUnavailable` when the store cannot be reached."""

    async def close(self) -> None:  # noqa: B027
        """Disconnect and stop listening."""

    @abc.abstractmethod
    async def admit(
        self,
        lease: Lease,
        limit: int,
        max_waiting: int,
        client_cap: int = 0,
        releasing: Sequence[Lease] = (),
    ) -> Admission:
        """Grant the lease a slot if fewer than ``limit`` are held and no older ticket waits
        for it; else queue (or refresh) its ticket. Atomic: never read-then-write.

        ``releasing`` are leases to :meth:`release` first, in the same round trip."""

    @abc.abstractmethod
    async def release(self, lease: Lease) -> None:
        """Drop the lease (or its waiting ticket); when a lease freed a slot that tickets
        wait for, tell the ``freed`` channel (``node`` and ``model``, one per line)."""

    @abc.abstractmethod
    async def renew(self, leases: Sequence[Lease]) -> None:
        """Push back the expiry of leases still running (re-adding any the store lost)."""

    @abc.abstractmethod
    async def heartbeat(self) -> int:
        """Say this replica is alive; return how many replicas are."""

    @abc.abstractmethod
    async def lead(self, role: str) -> bool:
        """Take or keep the lease on ``role`` (e.g. ``poller``); True while this replica
        holds it."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes) -> None:
        """Store a value every replica can read."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """A stored value, or None."""

    @abc.abstractmethod
    async def publish(self, channel: str, payload: bytes) -> None:
        """Send a message to every replica listening on ``channel`` (this one included)."""

    @abc.abstractmethod
    async def listen(self, channels: Sequence[str], handler: MessageHandler) -> None:
        """Call ``handler`` for every message on ``channels`` until :meth:`close`; keeps
        listening across reconnections, after each of which it calls
        ``handler(RESYNC, b"")``: messages may have been missed meanwhile."""


class LocalState(SharedState):
    """The store of one process, in memory: same rules, nothing shared.

    A lease or a ticket lives ``lease_ttl_s`` unless renewed, exactly as in a shared store.
    """

    name = "local"

    def __init__(self, settings: ClusterSettings, replica_id: str) -> None:
        super().__init__(settings, replica_id)
        self._leases: dict[tuple[str, str], dict[str, float]] = {}
        self._tickets: dict[tuple[str, str], dict[str, float]] = {}  # insertion = arrival
        self._clients: dict[str, dict[str, float]] = {}
        self._values: dict[str, bytes] = {}
        self._handlers: list[tuple[frozenset[str], MessageHandler]] = []

    async def admit(
        self,
        lease: Lease,
        limit: int,
        max_waiting: int,
        client_cap: int = 0,
        releasing: Sequence[Lease] = (),
    ) -> Admission:
        for done in releasing:
            await self.release(done)
        now = time.monotonic()
        key = (lease.node, lease.model)
        leases = _live(self._leases.setdefault(key, {}), now)
        tickets = _live(self._tickets.setdefault(key, {}), now)
        free = limit - len(leases)
        ahead = list(tickets).index(lease.id) if lease.id in tickets else len(tickets)
        if free > ahead:
            held = _live(self._clients.setdefault(lease.client, {}), now) if lease.client else {}
            if client_cap and len(held) >= client_cap:
                tickets.pop(lease.id, None)
                return Admission("capped", len(leases), len(tickets))
            tickets.pop(lease.id, None)
            leases[lease.id] = now + self.ttl_s
            if lease.client:
                held[lease.id] = now + self.ttl_s
            return Admission("granted", len(leases), len(tickets))
        if lease.id not in tickets and len(tickets) >= max_waiting:
            return Admission("full", len(leases), len(tickets))
        tickets[lease.id] = now + self.ttl_s
        return Admission("queued", len(leases), len(tickets), ahead)

    async def release(self, lease: Lease) -> None:
        key = (lease.node, lease.model)
        freed = self._leases.get(key, {}).pop(lease.id, None) is not None
        self._tickets.get(key, {}).pop(lease.id, None)
        if lease.client:
            self._clients.get(lease.client, {}).pop(lease.id, None)
        if freed and self._tickets.get(key):
            self._deliver("freed", f"{lease.node}\n{lease.model}".encode())

    async def renew(self, leases: Sequence[Lease]) -> None:
        until = time.monotonic() + self.ttl_s
        for lease in leases:
            self._leases.setdefault((lease.node, lease.model), {})[lease.id] = until
            if lease.client:
                self._clients.setdefault(lease.client, {})[lease.id] = until

    async def heartbeat(self) -> int:
        return 1

    async def lead(self, role: str) -> bool:
        return True

    async def put(self, key: str, value: bytes) -> None:
        self._values[key] = value

    async def get(self, key: str) -> bytes | None:
        return self._values.get(key)

    async def publish(self, channel: str, payload: bytes) -> None:
        self._deliver(channel, payload)

    async def listen(self, channels: Sequence[str], handler: MessageHandler) -> None:
        self._handlers.append((frozenset(channels), handler))

    def _deliver(self, channel: str, payload: bytes) -> None:
        for channels, handler in self._handlers:
            if channel in channels:
                handler(channel, payload)


def _live(entries: dict[str, float], now: float) -> dict[str, float]:
    """Drop the expired entries (in place) and return the mapping."""
    for name in [name for name, until in entries.items() if until <= now]:
        del entries[name]
    return entries
