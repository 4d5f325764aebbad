"""RedisState: the :class:`herd.shared_state.SharedState` of replicas, in Redis or Valkey.

Admission is one Lua script per call (see :mod:`.scripts`), so N replicas never hand a
node more than its slots. Every connection error or timeout becomes
:class:`~herd.shared_state.StateUnavailable`, which sends the replica to local state; the
client never retries on its own (that would hide an outage behind slow requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from herd.settings import ClusterSettings
from herd.shared_state import (
    RESYNC,
    Admission,
    Lease,
    MessageHandler,
    SharedState,
    StateUnavailable,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from herd_contrib.cluster import scripts

__all__ = ["RedisState"]

log = logging.getLogger("herd.cluster")


class RedisState(SharedState):
    """Shared state in Redis or Valkey (``redis://``, ``rediss://``, ``unix://``)."""

    name = "redis"
    schemes = ("redis", "rediss", "unix", "valkey", "valkeys")

    def __init__(self, settings: ClusterSettings, replica_id: str) -> None:
        super().__init__(settings, replica_id)
        url = settings.redis_url
        if url.startswith("valkey"):  # same protocol; redis-py knows the redis schemes
            url = "redis" + url[len("valkey") :]
        timeout = settings.timeout_s
        self.prefix = settings.key_prefix
        self.ttl_ms = max(1, int(settings.lease_ttl_s * 1000))
        common = {"socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0)}
        self.redis = aioredis.Redis.from_url(url, socket_timeout=timeout, **common)
        # Pub/sub waits for messages as long as it likes: no read timeout on its socket.
        self.subscriber = aioredis.Redis.from_url(url, health_check_interval=5, **common)
        self._admit = self.redis.register_script(scripts.ADMIT)
        self._release = self.redis.register_script(scripts.RELEASE)
        self._renew = self.redis.register_script(scripts.RENEW)
        self._heartbeat = self.redis.register_script(scripts.HEARTBEAT)
        self._lead = self.redis.register_script(scripts.LEAD)
        self._listener: asyncio.Task[None] | None = None
        self._closed = False

    # -- keys ---------------------------------------------------------------------------

    def _queue_keys(self, lease: Lease) -> list[str]:
        base = f"{self.prefix}{lease.node}|{lease.model}"
        return [f"{base}:leases", f"{base}:tickets", f"{base}:expiries", self._client(lease)]

    def _client(self, lease: Lease) -> str:
        return f"{self.prefix}client:{lease.client}"

    # -- the interface ------------------------------------------------------------------

    async def start(self) -> None:
        await self._call(self.redis.ping())

    async def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for client in (self.redis, self.subscriber):
            with contextlib.suppress(Exception):
                await client.aclose()

    async def admit(
        self,
        lease: Lease,
        limit: int,
        max_waiting: int,
        client_cap: int = 0,
        releasing: Sequence[Lease] = (),
    ) -> Admission:
        keys = [*self._queue_keys(lease), f"{self.prefix}seq"]
        args = [limit, lease.id, self.ttl_ms, max_waiting, client_cap, "1" if lease.client else "0"]
        if releasing:  # one round trip: the releases run first, in order
            answer = await self._call(self._pipelined(releasing, keys, args))
        else:
            answer = await self._call(self._admit(keys, args))
        outcome, active, waiting, position = answer
        return Admission(outcome.decode(), int(active), int(waiting), int(position))

    async def release(self, lease: Lease) -> None:
        await self._call(self._release(*self._release_call(lease)))

    async def _pipelined(self, releasing: Sequence[Lease], keys: list[str], args: list) -> list:
        # evalsha by hand: a pipeline told about scripts checks them (a round trip) each time.
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for done in releasing:
                done_keys, done_args = self._release_call(done)
                pipe.evalsha(self._release.sha, len(done_keys), *done_keys, *done_args)
            pipe.evalsha(self._admit.sha, len(keys), *keys, *args)
            try:
                return (await pipe.execute())[-1]
            except NoScriptError:  # a restarted server forgot them
                if attempt:
                    raise
                await self.redis.script_load(scripts.RELEASE)
                await self.redis.script_load(scripts.ADMIT)
        raise AssertionError("unreachable")

    def _release_call(self, lease: Lease) -> tuple[list[str], list[str]]:
        message = f"{lease.node}\n{lease.model}"
        return self._queue_keys(lease), [lease.id, f"{self.prefix}freed", message]

    async def renew(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return
        keys: list[str] = []
        args: list[object] = [self.ttl_ms]
        for lease in leases:
            keys += [self._queue_keys(lease)[0], self._client(lease)]
            args += [lease.id, "1" if lease.client else "0"]
        await self._call(self._renew(keys, args))

    async def heartbeat(self) -> int:
        keys = [f"{self.prefix}replicas"]
        return int(await self._call(self._heartbeat(keys, [self.replica_id, self.ttl_ms])))

    async def lead(self, role: str) -> bool:
        keys = [f"{self.prefix}leader:{role}"]
        return bool(await self._call(self._lead(keys, [self.replica_id, self.ttl_ms])))

    async def put(self, key: str, value: bytes) -> None:
        await self._call(self.redis.set(self.prefix + key, value))

    async def get(self, key: str) -> bytes | None:
        return await self._call(self.redis.get(self.prefix + key))

    async def publish(self, channel: str, payload: bytes) -> None:
        await self._call(self.redis.publish(self.prefix + channel, payload))

    async def listen(self, channels: Sequence[str], handler: MessageHandler) -> None:
        names = {self.prefix + c: c for c in channels}
        self._listener = asyncio.create_task(self._listen(names, handler))

    # -- internals ----------------------------------------------------------------------

    async def _call(self, awaitable):  # type: ignore[no-untyped-def]
        try:
            return await awaitable
        except (RedisError, OSError, TimeoutError) as exc:
            raise StateUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _listen(self, names: dict[str, str], handler: MessageHandler) -> None:
        """Keep one subscription open, reconnecting (every ``retry_s``) when it drops."""
        dropped = False
        while not self._closed:
            pubsub = self.subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*names)
                if dropped:  # whatever was said meanwhile is lost: let the replica re-read
                    dropped = False
                    handler(RESYNC, b"")
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    channel = message["channel"].decode()
                    try:
                        handler(names.get(channel, channel), message["data"])
                    except Exception:
                        log.exception("cluster: a handler failed on a %s message", channel)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                dropped = True
                log.debug("cluster: subscription lost (%s); retrying", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self.settings.retry_s)
