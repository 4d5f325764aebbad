"""The ranking cache's incremental pieces, each against what it stands for: one changed
total moved in the order, wait-time's shortest waits updated a few rows at a time, the
last ranking taken over only from the last decision for the model. (The decisions as a
whole, cached against uncached, are in test_ranking_cache.py.)"""

from __future__ import annotations

from herd import InferenceRequest, NodeView, Signal
from herd._engine.scheduling.ranking import Ranker
from herd._engine.scheduling.totals_memo import _move, _order
from herd_plugins.signal_wait_time import _bests_after, _bests_of
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.test_ranking_cache import (
    CachedCountingSignal,
    CountingSignal,
    _plain_views,
    _request,
)

# --- one changed total moves its row: the order a sort gives --------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, -0.0, 0.25, 0.5, 0.75, 1.0]), min_size=1, max_size=12),
    st.data(),
)
def test_one_row_moved_in_the_order_is_where_a_sort_puts_it(totals: list, data) -> None:
    order = _order(totals)
    index = data.draw(st.integers(0, len(totals) - 1))
    after = list(totals)
    after[index] = data.draw(st.sampled_from([0.0, 0.25, 0.5, 0.6, 0.75, 1.0]))
    moved, was, now = _move(order, after, index)
    assert moved == _order(after)
    # the positions the ranker moves its ranked nodes by (pop, insert) give the same order
    again = list(order)
    again.insert(now, again.pop(was))
    assert again == moved


# --- wait-time's shortest waits, a few rows at a time ----------------------------------

_WAITS = st.sampled_from([0.5, 1.0, 2.0, 2.0, 5.0, 9.0])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_WAITS, st.booleans(), st.booleans()), min_size=1, max_size=10),
    st.data(),
)
def test_shortest_waits_after_a_few_rows_changed_are_the_ones_looked_for(rows, data) -> None:
    def columns(rows: list) -> tuple[list, ...]:
        waits = [wait for wait, _, _ in rows]
        hot = [is_hot for _, is_hot, _ in rows]
        hot_online = [is_hot and online for _, is_hot, online in rows]
        return [1.0] * len(rows), waits, hot, hot_online

    before = columns(rows)
    best_hot, best_cold = _bests_of(*before[1:])
    changed = sorted(data.draw(st.sets(st.integers(0, len(rows) - 1), min_size=1, max_size=3)))
    after_rows = list(rows)
    for index in changed:
        after_rows[index] = data.draw(st.tuples(_WAITS, st.booleans(), st.booleans()))
    after = columns(after_rows)
    bests = _bests_after(before, best_hot, best_cold, after[1:], changed)
    if bests is not None:  # None: looked for again over every row
        assert bests == _bests_of(*after[1:])


# --- the last ranking is taken over only from the last decision for the model ----------


class RejectingSignal(CountingSignal):
    name = "rejecting"
    rejecting = False

    def reject(self, request: InferenceRequest, node: NodeView) -> str | None:
        return "not now" if self.rejecting else None


def test_a_status_change_seen_by_a_decision_that_ranked_nothing_still_counts() -> None:
    rejecting = RejectingSignal(Signal.Config())
    ranker = Ranker([CachedCountingSignal(Signal.Config()), rejecting])
    views = _plain_views(30)
    assert ranker.rank(_request(), views).ranked[-1].name == "n29"
    views[0].status = "degraded"
    rejecting.rejecting = True  # this decision ranks nothing, yet sees the change
    assert ranker.rank(_request(), views).ranked == []
    rejecting.rejecting = False
    assert ranker.rank(_request(), views).ranked[-1].name == "n0"  # degraded: last
