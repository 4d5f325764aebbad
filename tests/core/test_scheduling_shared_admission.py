"""Cluster-mode admission on its own: the other replicas' load in the signals' figures."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from herd._engine.scheduling.admission import SharedAdmission
from herd._engine.scheduling.queues import QueueBoard
from herd.settings import ClusterSettings

from tests.plugins.node_factory import MODEL, make_node, make_request


def test_other_replicas_load_shows_in_the_view_and_fades() -> None:
    async def scenario() -> None:
        board, view = QueueBoard(max_queue_depth=4), make_node(num_parallel=4)
        admission = SharedAdmission(SimpleNamespace(settings=ClusterSettings()))
        admission.board = board
        slot = board._start(board.queue(view, MODEL), make_request())  # one of our own
        admission._learn(view, MODEL, 3)  # the store counts 3: 2 are other replicas'
        assert view.in_flight_by_model[MODEL] == 3 and view.in_flight == 3
        admission._learn(view, MODEL, 2)  # fresher news: 1 elsewhere
        assert view.in_flight_by_model[MODEL] == 2
        board.release(slot)  # our own leaves; the others' part stays until it fades
        assert view.in_flight_by_model[MODEL] == 1 and view.in_flight == 1
        admission.forget_stale(60.0)  # still fresh
        assert view.in_flight_by_model[MODEL] == 1
        admission.forget_stale(0.0)
        assert view.in_flight_by_model == {} and view.in_flight == 0

    asyncio.run(scenario())


def test_a_request_is_sent_elsewhere_once_at_most_and_only_to_a_free_looking_node() -> None:
    busy, free = make_node("x", num_parallel=1), make_node("y", num_parallel=1)
    fleet = SimpleNamespace(nodes={v.name: SimpleNamespace(view=v) for v in (busy, free)})
    link = SimpleNamespace(settings=ClusterSettings(), gateway=SimpleNamespace(fleet=fleet))
    admission = SharedAdmission(link)
    request = make_request(request_id="r1")
    assert admission._bounce(busy, MODEL, request)
    assert not admission._bounce(busy, MODEL, request)  # the same request queues next time
    free.in_flight_by_model[MODEL] = 1  # now the other one looks full too
    assert not admission._bounce(busy, MODEL, make_request(request_id="r2"))
