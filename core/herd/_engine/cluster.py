"""One replica's link to the others (``cluster.redis_url``): what it shares, and how.

Built by the gateway only when ``cluster.redis_url`` is set; alone, nothing here runs.
The link owns the shared store (a :class:`~herd.shared_state.SharedState` plugin) and a
:class:`~herd.shared_state.LocalState` for degraded mode, and runs one maintenance loop
(every third of the lease TTL): renew this replica's leases, say it is alive (which counts
the replicas), and take or keep the ``poller`` lease, so one replica polls the agentless
nodes and tells the others what it found.

Messages on the ``events`` channel carry what each replica learns: live settings changes,
drains, agent heartbeats (an agent may talk to any replica), finished requests (so every
replica's signals learn session homes, wait times and availability from every request) and
poll results. Each message names its sender, which ignores its own.

When the store fails, the replica logs it once, runs on local state (slots split between the
last known number of replicas; every replica polls its nodes) and says so on ``/healthz``,
``/fleet/status`` and ``/metrics``; it rejoins when the store answers again.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
import pluggy

from herd._engine.plugins import PluginLoadError, collect_classes
from herd._engine.scheduling.admission import SharedAdmission
from herd.node_view import NodeReport
from herd.protocol.heartbeat import decode_heartbeat
from herd.settings import ClusterSettings
from herd.shared_state import RESYNC, Lease, LocalState, SharedState, StateUnavailable
from herd.trace import RequestTrace

if TYPE_CHECKING:
    from herd._engine.gateway import Gateway

__all__ = ["ClusterLink", "state_store_for"]

log = logging.getLogger("herd.cluster")

EVENTS, FREED = "events", "freed"
POLLER = "poller"
TRACE_BATCH_S = 0.2  # each replica's signals learn of the others' requests this late


class Event(msgspec.Struct, array_like=True):
    """One message on the events channel: who sent it, what it is, its body (JSON)."""

    origin: str
    kind: str
    body: msgspec.Raw


class PollResult(msgspec.Struct):
    node: str
    report: NodeReport | None = None
    error: str = ""


class Drain(msgspec.Struct):
    node: str
    draining: bool


_BUILTIN_STORE = "herd_contrib.cluster"


def state_store_for(pm: pluggy.PluginManager, settings: ClusterSettings) -> type[SharedState]:
    """The registered store that serves ``cluster.redis_url``'s scheme.

    The Redis/Valkey store (``herd_contrib.cluster``) is registered here when no plugin
    claims the scheme, so the one key is all an operator sets.

    Raises:
        PluginLoadError: the ``redis`` client is not installed, or no store serves the scheme.
    """
    scheme = urlsplit(settings.redis_url).scheme.lower()
    for _ in range(2):
        stores = collect_classes(pm.hook.herd_register_state_stores())
        for store in stores.values():
            if scheme in store.schemes:
                return store
        if pm.has_plugin(_BUILTIN_STORE):
            break
        try:
            module = importlib.import_module(_BUILTIN_STORE)
        except ImportError as exc:
            raise PluginLoadError(
                f"cluster.redis_url needs the Redis client ({exc}): "
                "pip install 'herd-gateway[cluster]'"
            ) from None
        pm.register(module, name=_BUILTIN_STORE)
    known = sorted({s for store in stores.values() for s in store.schemes})
    raise PluginLoadError(
        f"cluster.redis_url: no state store serves {scheme!r} URLs "
        f"(known: {', '.join(known) or 'none'})"
    )


class ClusterLink:
    """This replica's shared store, its fallback, and the messages between replicas."""

    def __init__(self, gateway: Gateway, store_class: type[SharedState]) -> None:
        self.gateway = gateway
        self.settings = settings = gateway.settings.cluster
        # Host, process and a random tag: two apps in one process are two replicas too.
        default_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.replica_id = settings.replica_id or default_id
        self.store = store_class(settings, self.replica_id)
        self.local = LocalState(settings, self.replica_id)
        self.admission = SharedAdmission(self)
        self.degraded = False
        self.degraded_since = 0.0
        self.degraded_count = 0
        self.last_error = ""
        self.replicas = 1
        self.leader = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._forgetter: asyncio.Task[None] | None = None
        self._applying = False  # taking another replica's settings: do not echo them
        self._outbox: list[RequestTrace] = []
        # Leases freed while the store was away (bounded: the oldest expire there anyway).
        self.owed: deque[Lease] = deque(maxlen=4096)

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, take the shared settings and drains, start listening and maintaining."""
        scheduler = self.gateway.scheduler
        scheduler.board.admission = self.admission
        self.admission.board = scheduler.board
        try:
            await self.store.start()
            await self._maintain_once()
            await self._restore()
        except StateUnavailable as exc:
            self.degrade(exc)
        await self.store.listen((EVENTS, FREED), self._on_message)
        self._publish("hello", b"{}")  # the others count replicas again at once
        self._loop = asyncio.create_task(self._maintain())
        self._forgetter = asyncio.create_task(self._forget_stale_load())
        log.info(
            "cluster: replica %s, %s (%d replica(s))",
            self.replica_id,
            "degraded" if self.degraded else "sharing state",
            self.replicas,
        )

    async def stop(self) -> None:
        self.admission.flush_releases()  # what finished last still leaves the store
        for task in (self._loop, self._forgetter):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        await self.store.close()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run store work in the background (a release, a publish): never blocks a request."""
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:  # called off the router's loop: a programming error
            work.close()
            log.error("cluster: store work started outside the event loop was dropped")
            return
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, StateUnavailable):
            self.degrade(error)
        elif error is not None:
            log.error("cluster: background store work failed", exc_info=error)

    # -- degraded mode ------------------------------------------------------------------

    def admission_store(self, slots: int) -> tuple[SharedState, int]:
        """The store to admit through, and a node's slots there (its share, when degraded)."""
        if not self.degraded:
            return self.store, slots
        return self.local, max(1, slots // max(1, self.replicas))

    def degrade(self, exc: BaseException) -> None:
        """Run on local state from now on; logged once per outage."""
        self.last_error = str(exc)
        if self.degraded:
            return
        self.degraded = True
        self.degraded_since = time.time()
        self.degraded_count += 1
        self.leader = False
        log.warning(
            "cluster: the shared store is unreachable (%s); running on local state with 1/%d "
            "of each node's slots until it answers",
            exc,
            self.replicas,
        )

    def polls(self) -> bool:
        """Whether this replica polls the agentless nodes now (the leader, or degraded)."""
        return self.leader or self.degraded

    def status(self) -> dict[str, Any]:
        """For ``/healthz``, ``/fleet/status`` and ``/metrics``."""
        return {
            "replica": self.replica_id,
            "store": self.store.name,
            "state": "degraded" if self.degraded else "shared",
            "replicas": self.replicas,
            "poller": self.leader,
            "degraded_since": self.degraded_since if self.degraded else None,
            "outages": self.degraded_count,
            "last_error": self.last_error,
        }

    async def _forget_stale_load(self) -> None:
        """The others' load a replica saw in its last answers fades after a second."""
        while True:
            await asyncio.sleep(0.5)
            self.admission.forget_stale(1.0)

    async def _maintain(self) -> None:
        while True:
            ttl = self.settings.lease_ttl_s
            await asyncio.sleep(self.settings.retry_s if self.degraded else ttl / 3)
            try:
                await self._maintain_once()
            except StateUnavailable as exc:
                self.degrade(exc)
            except Exception:
                log.exception("cluster: maintenance failed")

    async def _maintain_once(self) -> None:
        held = self.admission.held()
        await self.local.renew(held)
        # Renewing first also re-adds leases the store lost (a restart, degraded grants).
        await self.store.renew(held)
        self.replicas = await self.store.heartbeat()
        self.leader = await self.store.lead(POLLER)
        while self.owed:
            await self.store.release(self.owed[0])
            self.owed.popleft()
        if self.degraded:
            self.degraded = False
            log.warning("cluster: the shared store answers again; sharing state")
            await self._restore()

    async def _restore(self) -> None:
        """Take the settings and drains other replicas set (start-up, rejoin)."""
        raw = await self.store.get("settings")
        live = self.gateway.live_settings
        if raw is None and live.overrides:  # the first replica brings its saved overrides
            await self.store.put("settings", msgspec.json.encode(live.overrides))
        elif raw:
            overrides = msgspec.json.decode(raw)
            gone = {key: None for key in live.overrides if key not in overrides}
            if overrides != live.overrides and (overrides or gone):
                self._apply_settings({**gone, **overrides})
        fleet = self.gateway.fleet
        for name in list(fleet.nodes):
            raw = await self.store.get(f"drain:{name}")
            if raw is not None:
                drained = raw == b"1"
                if fleet.nodes[name].view.draining != drained:
                    fleet.membership.set_drain(name, drained)

    # -- sharing ------------------------------------------------------------------------

    def _publish(self, kind: str, body: Any) -> None:
        if self.degraded:
            return
        raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
        event = msgspec.json.encode(Event(self.replica_id, kind, msgspec.Raw(raw)))
        self.spawn(self.store.publish(EVENTS, event))

    def settings_changed(self, changes: dict[str, Any]) -> None:
        """This replica changed live settings: store them and tell the others."""
        if self.degraded or self._applying:
            return
        overrides = msgspec.json.encode(self.gateway.live_settings.overrides)
        self.spawn(self.store.put("settings", overrides))
        self._publish("settings", changes)

    def drain_changed(self, node: str, draining: bool) -> None:
        if self.degraded:
            return
        self.spawn(self.store.put(f"drain:{node}", b"1" if draining else b"0"))
        self._publish("drain", Drain(node, draining))

    def heartbeat_accepted(self, body: bytes) -> None:
        """An agent's heartbeat reached this replica: relay it to the others."""
        self._publish("heartbeat", body)

    def request_finished(self, trace: RequestTrace) -> None:
        """Share a finished request with the other replicas' signals, in batches: one
        message per ``TRACE_BATCH_S`` at most, whatever the request rate."""
        if self.degraded or self.replicas < 2:  # nobody to tell
            return
        self._outbox.append(trace)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_later(TRACE_BATCH_S, self._flush_traces)

    def _flush_traces(self) -> None:
        batch, self._outbox = self._outbox, []
        if batch:
            self._publish("traces", batch)

    def polled(self, node: str, report: NodeReport | None, error: str = "") -> None:
        """The poller's findings on an agentless node, for the replicas that do not poll."""
        if self.leader:
            self._publish("poll", PollResult(node, report, error))

    # -- receiving ----------------------------------------------------------------------

    def _on_message(self, channel: str, payload: bytes) -> None:
        if channel == RESYNC:  # the subscription came back: catch up on what was missed
            if not self.degraded:
                self.spawn(self._restore())
            return
        if channel == FREED:
            node, _, model = payload.decode().partition("\n")
            self.admission.wake(node, model)
            return
        event = msgspec.json.decode(payload, type=Event)
        if event.origin == self.replica_id:
            return
        self.replicas = max(self.replicas, 2)  # another replica speaks: there are two at least
        handler = _HANDLERS.get(event.kind)
        if handler is not None:
            handler(self, bytes(event.body))

    def _apply_settings(self, changes: dict[str, Any]) -> None:
        self._applying = True
        try:
            self.gateway.live_settings.update(changes)
        except Exception as exc:
            log.warning("cluster: ignoring settings from another replica: %s", exc)
        finally:
            self._applying = False

    def _on_hello(self, body: bytes) -> None:
        self.spawn(self._count_replicas())

    async def _count_replicas(self) -> None:
        self.replicas = await self.store.heartbeat()

    def _on_settings(self, body: bytes) -> None:
        self._apply_settings(msgspec.json.decode(body))

    def _on_drain(self, body: bytes) -> None:
        drain = msgspec.json.decode(body, type=Drain)
        if drain.node in self.gateway.fleet.nodes:
            self.gateway.fleet.membership.set_drain(drain.node, drain.draining)

    def _on_heartbeat(self, body: bytes) -> None:
        try:
            self.gateway.fleet.membership.accept(decode_heartbeat(body))
        except Exception as exc:
            log.debug("cluster: a relayed heartbeat was refused: %s", exc)

    def _on_traces(self, body: bytes) -> None:
        for trace in msgspec.json.decode(body, type=list[RequestTrace]):
            self.gateway.learn(trace)

    def _on_poll(self, body: bytes) -> None:
        result = msgspec.json.decode(body, type=PollResult)
        fleet = self.gateway.fleet
        node = fleet.nodes.get(result.node)
        if node is None or self.polls():
            return
        if result.report is not None:
            fleet.apply(node.view, result.report)
        else:
            fleet.mark_unreachable(node.view, result.error)


_HANDLERS = {
    "hello": ClusterLink._on_hello,
    "settings": ClusterLink._on_settings,
    "drain": ClusterLink._on_drain,
    "heartbeat": ClusterLink._on_heartbeat,
    "traces": ClusterLink._on_traces,
    "poll": ClusterLink._on_poll,
}
