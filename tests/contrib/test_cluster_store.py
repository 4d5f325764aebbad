"""The SharedState contract, on the in-memory LocalState and on Redis (a real server).

Both stores must give the same answers: the Redis Lua scripts are checked against the
reference semantics of LocalState, step by step.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable

import pytest
from herd.settings import ClusterSettings
from herd.shared_state import RESYNC, Lease, LocalState, SharedState, StateUnavailable

from tests.contrib.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis

pytest.importorskip("redis")


def _redis_store(server: RedisServer, replica: str = "r1", ttl: float = 10.0) -> SharedState:
    from herd_contrib.cluster import RedisState

    settings = ClusterSettings(redis_url=server.url, lease_ttl_s=ttl, key_prefix="t:")
    return RedisState(settings, replica)


class Stores:
    """Makes stores of one kind for a test; ``run`` drives a scenario and closes them."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.request = request
        self.made: list[SharedState] = []
        self.shared_local: dict[float, LocalState] = {}

    def __call__(self, replica: str = "r1", ttl: float = 10.0) -> SharedState:
        if self.kind == "local":  # one process: its "replicas" share one LocalState
            settings = ClusterSettings(lease_ttl_s=ttl)
            store = self.shared_local.setdefault(ttl, LocalState(settings, "r1"))
        else:
            store = _redis_store(self.request.getfixturevalue("redis_server"), replica, ttl)
        self.made.append(store)
        return store

    def run(self, scenario: Callable[[Stores], Awaitable[None]]) -> None:
        async def main() -> None:
            try:
                await asyncio.wait_for(scenario(self), 30)
            finally:
                for store in self.made:
                    await store.close()

        asyncio.run(main())


@pytest.fixture(params=["local", "redis"])
def make_store(request: pytest.FixtureRequest) -> Stores:
    return Stores(request.param, request)


def lease(n: int, client: str = "", node: str = "gpu1") -> Lease:
    return Lease(node, "llama3.2:3b", f"req-{n}", client)


def test_slots_are_granted_up_to_the_limit_then_queued_in_order(make_store) -> None:
    async def scenario(make_store: Stores) -> None:
        a, b = make_store("r1"), make_store("r2")
        assert (await a.admit(lease(1), 2, 8)).outcome == "granted"
        assert (await b.admit(lease(2), 2, 8)).outcome == "granted"
        third = await a.admit(lease(3), 2, 8)
        fourth = await b.admit(lease(4), 2, 8)
        assert (third.outcome, third.active, third.position) == ("queued", 2, 0)
        assert (fourth.outcome, fourth.waiting, fourth.position) == ("queued", 2, 1)
        await a.release(lease(1))
        # The older ticket goes first; a newcomer does not overtake either.
        assert (await b.admit(lease(4), 2, 8)).outcome == "queued"
        assert (await a.admit(lease(5), 2, 8)).outcome == "queued"
        assert (await a.admit(lease(3), 2, 8)).outcome == "granted"
        await b.release(lease(2))
        assert (await b.admit(lease(4), 2, 8)).outcome == "granted"

    make_store.run(scenario)


def test_a_full_queue_refuses_and_a_withdrawn_ticket_leaves_it(make_store) -> None:
    async def scenario(make_store: Stores) -> None:
        store = make_store()
        assert (await store.admit(lease(1), 1, 1)).outcome == "granted"
        assert (await store.admit(lease(2), 1, 1)).outcome == "queued"
        assert (await store.admit(lease(3), 1, 1)).outcome == "full"
        await store.release(lease(2))  # the waiter gave up
        assert (await store.admit(lease(3), 1, 1)).outcome == "queued"

    make_store.run(scenario)


def test_the_client_cap_counts_leases_across_replicas(make_store) -> None:
    async def scenario(make_store: Stores) -> None:
        a, b = make_store("r1"), make_store("r2")
        assert (await a.admit(lease(1, "key:ci"), 8, 8, client_cap=2)).outcome == "granted"
        assert (await b.admit(lease(2, "key:ci", "gpu2"), 8, 8, client_cap=2)).outcome == "granted"
        assert (await b.admit(lease(3, "key:ci"), 8, 8, client_cap=2)).outcome == "capped"
        assert (await b.admit(lease(4, "key:other"), 8, 8, client_cap=2)).outcome == "granted"
        await a.release(lease(1, "key:ci"))
        assert (await b.admit(lease(5, "key:ci"), 8, 8, client_cap=2)).outcome == "granted"

    make_store.run(scenario)


def test_a_lease_nobody_renews_expires_and_a_renewed_one_stays(make_store) -> None:
    async def scenario(make_store: Stores) -> None:
        store = make_store(ttl=0.4)
        await store.admit(lease(1), 2, 8)
        await store.admit(lease(2), 2, 8)
        for _ in range(4):  # renew lease 2 only, for well over a TTL
            await asyncio.sleep(0.15)
            await store.renew([lease(2)])
        answer = await store.admit(lease(3), 2, 8)
        assert (answer.outcome, answer.active) == ("granted", 2)  # lease 1 expired, 2 lives
        assert (await store.admit(lease(4), 2, 8)).outcome == "queued"

    make_store.run(scenario)


def test_release_tells_listeners_which_slot_freed(make_store) -> None:
    async def scenario(make_store: Stores) -> None:
        store = make_store()
        heard: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        await store.listen(["freed"], lambda channel, data: heard.put_nowait((channel, data)))
        await asyncio.sleep(0.3)  # the subscription is in place
        await store.admit(lease(1), 1, 8)
        await store.release(lease(1))  # nobody waits: nothing to say
        await store.admit(lease(1), 1, 8)
        await store.admit(lease(2), 1, 8)  # queued
        await store.release(lease(1))
        await store.release(lease(1))  # twice: nothing more to say
        assert await asyncio.wait_for(heard.get(), 10) == ("freed", b"gpu1\nllama3.2:3b")
        await store.publish("freed", b"x\ny")
        assert await asyncio.wait_for(heard.get(), 10) == ("freed", b"x\ny")

    make_store.run(scenario)


def test_values_and_lease_renewal_re_adds_lost_leases(make_store) -> None:
    async def scenario(make_store: Stores) -> None:
        store = make_store()
        await store.put("settings", b'{"routing.auto_pull": true}')
        assert await store.get("settings") == b'{"routing.auto_pull": true}'
        assert await store.get("nothing") is None
        await store.renew([lease(7)])  # never admitted here (a store restart lost it)
        assert (await store.admit(lease(8), 1, 8)).outcome == "queued"

    make_store.run(scenario)


def test_one_replica_leads_until_its_lease_lapses(redis_server) -> None:
    async def scenario() -> None:
        a, b = _redis_store(redis_server, "r1", 0.5), _redis_store(redis_server, "r2", 0.5)
        try:
            assert await a.lead("poller") and not await b.lead("poller")
            assert await a.lead("poller")  # renewing
            assert await a.heartbeat() == 1 and await b.heartbeat() == 2
            for _ in range(100):
                await asyncio.sleep(0.1)
                if await b.lead("poller"):
                    break
            else:
                pytest.fail("the lapsed leader lease was never taken over")
            assert not await a.lead("poller")
        finally:
            await a.close()
            await b.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_an_unreachable_server_is_state_unavailable(redis_server) -> None:
    async def scenario() -> None:
        store = _redis_store(redis_server)
        try:
            await store.start()
            redis_server.stop()
            with pytest.raises(StateUnavailable):
                await store.admit(lease(1), 1, 8)
            redis_server.start()
            assert (await store.admit(lease(1), 1, 8)).outcome == "granted"
        finally:
            await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_an_admission_can_carry_releases_in_the_same_round_trip(make_store) -> None:
    async def scenario(make_store: Stores) -> None:
        store = make_store()
        assert (await store.admit(lease(1), 1, 8)).outcome == "granted"
        answer = await store.admit(lease(2), 1, 8, releasing=[lease(1)])
        assert (answer.outcome, answer.active) == ("granted", 1)
        if make_store.kind == "redis":  # a restarted server forgot the scripts
            await store.redis.script_flush()
        answer = await store.admit(lease(3), 1, 8, releasing=[lease(2)])
        assert (answer.outcome, answer.active) == ("granted", 1)

    make_store.run(scenario)


def test_a_listener_that_lost_its_subscription_is_told_to_resync(redis_server) -> None:
    async def scenario() -> None:
        store = _redis_store(redis_server)
        heard: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        try:
            await store.listen(["events"], lambda channel, data: heard.put_nowait((channel, data)))
            await asyncio.sleep(0.3)
            redis_server.stop()
            await asyncio.sleep(0.5)
            redis_server.start()
            assert await asyncio.wait_for(heard.get(), 20) == (RESYNC, b"")
            await asyncio.sleep(0.3)
            await store.publish("events", b"hello")
            assert await asyncio.wait_for(heard.get(), 20) == ("events", b"hello")
        finally:
            await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 40))


def test_a_password_protected_server_needs_the_password_in_the_url() -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server")
    server = RedisServer(binary, free_port(), password="s3cret-pass").start()

    async def scenario() -> None:
        good = _redis_store(server)
        settings = ClusterSettings(redis_url=server.url.replace("s3cret-pass", "wrong"))
        from herd_contrib.cluster import RedisState

        bad = RedisState(settings, "r2")
        try:
            await good.start()
            assert (await good.admit(lease(1), 1, 8)).outcome == "granted"
            with pytest.raises(StateUnavailable, match=r"(?i)auth|password"):
                await bad.start()
        finally:
            await good.close()
            await bad.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        server.stop()
