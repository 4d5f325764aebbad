"""Admission: per node and model queues, handover, cancellation, holding, client caps."""

from __future__ import annotations

import asyncio

import pytest
from herd._engine.scheduling.queues import QueueBoard, QueueFull, client_key
from herd.errors import HerdError

from tests.plugins.node_factory import MODEL, make_node, make_request


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_a_free_slot_is_taken_at_once_and_counted_on_the_node() -> None:
    async def scenario():
        board, view = QueueBoard(max_queue_depth=4), make_node(num_parallel=2)
        slot = await board.acquire(view, make_request())
        assert view.in_flight == 1 and view.in_flight_by_model == {MODEL: 1}
        board.release(slot)
        board.release(slot)  # twice is harmless
        assert view.in_flight == 0 and view.in_flight_by_model == {}
        assert board.stats()["a"][MODEL] == {
            "pending": 0,
            "in_flight": 0,
            "done": 1,
            "failed": 0,
            "concurrency": 2,
            "concurrency_source": "num_parallel",
            "kind": "text",
        }

    run(scenario())


def test_waiters_are_served_in_order_and_concurrency_is_never_exceeded() -> None:
    async def scenario():
        board, view = QueueBoard(max_queue_depth=8), make_node(num_parallel=2)
        running, peak, order = 0, 0, []

        async def one(index: int) -> None:
            nonlocal running, peak
            slot = await board.acquire(view, make_request())
            running += 1
            peak = max(peak, running)
            order.append(index)
            await asyncio.sleep(0.01)
            running -= 1
            board.release(slot)

        await asyncio.gather(*(one(i) for i in range(7)))
        assert peak == 2 and order == list(range(7))
        assert board.stats()["a"][MODEL]["done"] == 7

    run(scenario())


def test_a_full_queue_refuses_and_a_client_who_leaves_frees_its_place() -> None:
    async def scenario():
        board, view = QueueBoard(max_queue_depth=1), make_node(num_parallel=1)
        first = await board.acquire(view, make_request())
        waiting = asyncio.ensure_future(board.acquire(view, make_request()))
        await asyncio.sleep(0)
        assert view.queued_by_model == {MODEL: 1} and not board.has_room(view, MODEL)
        with pytest.raises(QueueFull):
            await board.acquire(view, make_request())
        waiting.cancel()  # the client disconnected while queued
        await asyncio.sleep(0)
        assert view.queued_by_model == {} and board.has_room(view, MODEL)
        board.release(first, failed=True)
        assert view.in_flight == 0 and board.stats()["a"][MODEL]["failed"] == 1

    run(scenario())


def test_a_slot_handed_to_a_waiter_that_just_left_goes_to_the_next() -> None:
    async def scenario():
        board, view = QueueBoard(max_queue_depth=4), make_node(num_parallel=1)
        first = await board.acquire(view, make_request())
        leaving = asyncio.ensure_future(board.acquire(view, make_request()))
        staying = asyncio.ensure_future(board.acquire(view, make_request()))
        await asyncio.sleep(0)
        board.release(first)  # handed to `leaving`...
        leaving.cancel()  # ...which is cancelled before it runs
        slot = await staying
        assert slot.view is view and view.in_flight == 1
        with pytest.raises(asyncio.CancelledError):
            await leaving

    run(scenario())


def test_held_requests_wake_when_a_slot_frees() -> None:
    async def scenario():
        board, view = QueueBoard(max_queue_depth=0), make_node(num_parallel=1)
        slot = await board.acquire(view, make_request())
        held = asyncio.ensure_future(board.wait_for_room(30))
        await asyncio.sleep(0)
        assert board.held == 1
        board.release(slot)
        await held
        assert board.held == 0

    run(scenario())


def test_the_per_client_cap_gives_429_and_counts_down_on_release() -> None:
    async def scenario():
        board, view = QueueBoard(max_queue_depth=4, max_in_flight_per_client=1), make_node()
        request = make_request(client="10.0.0.9:51234")
        client = client_key(request)
        assert client == "10.0.0.9"
        board.enter(client)
        with pytest.raises(HerdError) as refused:
            board.enter(client)
        assert refused.value.status == 429 and refused.value.retry_after == 1
        slot = await board.acquire(view, request)
        slot.client = client  # the serving slot carries the client's count
        board.release(slot)
        board.enter(client)  # room again

    run(scenario())


def test_an_api_key_is_the_client_when_there_is_one() -> None:
    assert client_key(make_request(client="10.0.0.9:1", api_key="alice")) == "key:alice"


def test_held_requests_wake_when_a_node_comes_online_or_is_undrained(make_router) -> None:
    """No re-poll: the fleet tells the board, and held requests look again at once."""
    from herd.node_view import NodeReport

    router = make_router(nodes=[{"name": "gone", "url": "http://127.0.0.1:9"}])
    gateway = router.gateway

    async def hold_then(change) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        board = gateway.scheduler.board
        waiter = asyncio.ensure_future(board.wait_for_room(60))
        await asyncio.sleep(0)  # the waiter is held now
        before = board.held
        change()
        after = board.held  # woken synchronously: no longer held
        await asyncio.wait_for(waiter, 10)
        return before, after

    view = gateway.fleet.nodes["gone"].view
    view.status = "offline"
    back = router.call(hold_then(lambda: gateway.fleet.apply(view, NodeReport())))
    assert back == (1, 0) and view.status == "online"
    gateway.set_draining("gone", True)
    undrained = router.call(hold_then(lambda: gateway.set_draining("gone", False)))
    assert undrained == (1, 0)
