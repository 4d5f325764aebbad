"""The queues feed the adaptive limit: which finished streams count, before any poll."""

from __future__ import annotations

import asyncio

from herd._engine.node_lines import LineFields
from herd._engine.scheduling.queues import QueueBoard, Slot
from herd.interfaces import WholeReply

from tests.plugins.node_factory import MODEL, make_node, make_request


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def _answer(slot: Slot, status: int = 200, wait_s: float = 0.001) -> None:
    """The node's first byte, then its final line: ``wait_s`` inside the node, 32 tokens."""
    reply = WholeReply(status, b"{}")
    reply.streaming = True
    slot.reply = reply
    generate = 32 * 5_000_000
    slot.final = LineFields(
        done=True,
        total_duration=int(wait_s * 1e9) + generate,
        eval_duration=generate,
        eval_count=32,
    )


def test_a_model_that_answers_is_loaded_before_a_poll_says_so() -> None:
    async def scenario():
        board = QueueBoard(max_queue_depth=64, adaptive=True)
        view = make_node(num_parallel=0)  # untold; the last poll showed nothing loaded
        running = [await board.acquire(view, make_request()) for _ in range(4)]
        assert all(slot.cold for slot in running)  # sent before anything answered
        for slot in running:
            _answer(slot)
        for _ in range(12):  # four always in flight: each one answered is replaced
            board.release(running.pop(0))
            slot = await board.acquire(view, make_request())
            assert not slot.cold  # the model answered since the queue was last idle
            _answer(slot)
            running.append(slot)
        assert view.learned_parallel[MODEL] == 8  # a clean round at the limit: doubled
        assert board.stats()["a"][MODEL]["concurrency_source"] == "learned"
        for slot in running:
            board.release(slot)
        again = await board.acquire(view, make_request())
        assert again.cold  # idle in between: it may have been unloaded, the polls tell
        board.release(again)

    run(scenario())


def test_an_error_answer_is_no_sign_of_a_loaded_model() -> None:
    async def scenario():
        board = QueueBoard(max_queue_depth=8, adaptive=True)
        view = make_node(num_parallel=0)
        first = await board.acquire(view, make_request())
        _answer(first, status=500)
        second = await board.acquire(view, make_request())
        assert second.cold
        loaded = make_node("b", num_parallel=0, loaded={MODEL: 4096})
        assert not (await board.acquire(loaded, make_request())).cold  # the poll says so

    run(scenario())


def test_cold_samples_teach_nothing_and_a_told_node_learns_nothing() -> None:
    async def scenario():
        board = QueueBoard(max_queue_depth=64, adaptive=True)
        view = make_node(num_parallel=0)
        for _ in range(3):  # one at a time, the queue idle in between: every one cold
            slot = await board.acquire(view, make_request())
            _answer(slot, wait_s=5.0)
            board.release(slot)
        assert MODEL not in view.learned_parallel
        told = make_node("b", num_parallel=2, loaded={MODEL: 4096})
        for _ in range(8):
            slot = await board.acquire(told, make_request())
            _answer(slot)
            board.release(slot)
        assert told.learned_parallel == {} and told.slots_for(MODEL) == 2

    run(scenario())
