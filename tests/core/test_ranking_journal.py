"""The view journal, and what the ranker leaves out by it: views not read at all, a
signal asked again only where a field it reads changed, a signal not called when
nothing it declares it reads moved. Each test stands for one piece and fails when that
piece is wrong. (Whole decisions, cached against uncached, are in test_ranking_cache.py.)"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pytest
from herd import InferenceRequest, NodeView, Signal
from herd._engine.scheduling.ranking import Ranker
from herd.node_view import ModelEntry, changes_since, latest_change

from tests.core.test_ranking_cache import _plain_views, _request

# --- the journal ------------------------------------------------------------------------


def test_the_journal_lists_every_write_with_its_field_in_order() -> None:
    view = NodeView(name="a", url="u")
    mark = latest_change()
    view.in_flight += 1
    alias = view.in_flight_by_model
    alias["m"] = 1  # through an alias
    view.service_models["embed"] = {}
    view.service_models["embed"]["e"] = ModelEntry(name="e", key="e")  # an inner dict
    view.tags.append("x")
    entries = changes_since(mark)
    assert [(seen is view, field) for _, seen, field in entries] == [
        (True, "in_flight"),
        (True, "in_flight_by_model"),
        (True, "service_models"),
        (True, "service_models"),
        (True, "tags"),
    ]
    revisions = [revision for revision, _, _ in entries]
    assert revisions == sorted(revisions) and revisions[-1] == view.revision == latest_change()
    assert changes_since(latest_change()) == []


@pytest.mark.parametrize("writes", [0, 1, 7, 8, 9, 40])
def test_the_journal_lists_exactly_the_changes_after_a_revision(writes: int) -> None:
    view = NodeView(name="a", url="u")
    mark = latest_change()
    for count in range(writes):
        view.in_flight = count
    entries = changes_since(mark)
    assert len(entries) == writes and all(revision > mark for revision, _, _ in entries)
    if writes:
        assert entries[0][0] == mark + 1 and entries[-1][0] == view.revision


def test_a_container_given_to_another_field_reports_that_field() -> None:
    view = NodeView(name="a", url="u")
    view.loading = view.loaded  # the same dict, now under another field: a copy
    mark = latest_change()
    view.loading["m"] = 4096
    assert [field for _, _, field in changes_since(mark)] == ["loading"]
    assert "m" not in view.loaded


def test_the_journal_says_when_it_no_longer_reaches_back() -> None:
    view = NodeView(name="a", url="u")
    mark = latest_change()
    for count in range(5000):  # more than it keeps
        view.in_flight = count
    assert changes_since(mark) is None  # not a partial list: the caller reads revisions
    recent = latest_change()
    view.in_flight = -1
    assert [field for _, _, field in changes_since(recent)] == ["in_flight"]


# --- the candidates: read only where the journal says --------------------------------


class InFlightSignal(Signal):
    """Scores by requests in flight; remembers which nodes it was asked about."""

    name = "in-flight"
    reads = frozenset({"in_flight"})

    def __init__(self, config: Signal.Config) -> None:
        super().__init__(config)
        self.asked: list[str] = []

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str:
        return request.model_key

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list:
        self.asked.extend(node.name for node in nodes)
        return self.scores(request, nodes)

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return 1.0 / (1 + node.in_flight)


def _pair(cls: type[Signal] = InFlightSignal) -> tuple[Ranker, Ranker, Signal]:
    signal = cls(Signal.Config())
    return Ranker([signal]), Ranker([cls(Signal.Config())], cache=False), signal


def _same(cached: Ranker, plain: Ranker, views: list[NodeView], **request) -> None:
    mine, theirs = cached.rank(_request(**request), views), plain.rank(_request(**request), views)
    assert [v.name for v in mine.ranked] == [v.name for v in theirs.ranked]
    assert mine.totals == theirs.totals and mine.rejections == theirs.rejections
    assert {id(view) for view in mine.ranked} <= {id(view) for view in views}  # these ones


def test_a_change_to_a_field_candidates_depend_on_is_seen() -> None:
    cached, plain, _ = _pair()
    views = _plain_views(30)
    _same(cached, plain, views)
    views[3].draining = True
    _same(cached, plain, views)
    assert cached.rank(_request(), views).rejections == {"n3": "node draining"}


def test_an_equal_copy_put_in_a_views_place_is_followed_from_then_on() -> None:
    cached, plain, _ = _pair()
    views = _plain_views(30)
    _same(cached, plain, views)
    views[1].in_flight = 1  # (a change read from the journal: the views' places are known)
    _same(cached, plain, views)
    views[5] = copy.copy(views[5])  # equal to the one it replaces, another object
    _same(cached, plain, views)
    views[5].in_flight = 9  # journaled under the copy
    _same(cached, plain, views)
    assert cached.rank(_request(), views).ranked[-1].name == "n5"


# --- a signal is asked again only where a field it reads changed ----------------------


def test_a_signal_is_asked_again_only_for_nodes_where_a_field_it_reads_changed() -> None:
    cached, plain, signal = _pair()
    views = _plain_views(30)
    _same(cached, plain, views)
    signal.asked.clear()
    views[4].vram_used = 5  # a field it does not read
    _same(cached, plain, views)
    assert signal.asked == []
    views[7].in_flight = 3  # one it reads: that node alone (not n4 again)
    _same(cached, plain, views)
    assert signal.asked == ["n7"]
    views[2].in_flight = 1
    views[9].ram_total = 8
    _same(cached, plain, views)
    assert signal.asked == ["n7", "n2"]
    views[3].ram_total = 8  # (two changed nodes: more, and it asks every signal afresh)
    views[5].in_flight = 2
    _same(cached, plain, views)
    assert signal.asked == ["n7", "n2", "n5"]


def test_a_signal_that_declares_nothing_is_asked_for_any_change() -> None:
    class Undeclared(InFlightSignal):
        reads = None

    cached, plain, signal = _pair(Undeclared)
    views = _plain_views(30)
    _same(cached, plain, views)
    signal.asked.clear()
    views[4].vram_used = 5
    _same(cached, plain, views)
    assert signal.asked == ["n4"]


# --- a signal is not called when nothing it reads moved -------------------------------


class PromptSignal(Signal):
    """Settles by the prompt's length; counts its settles."""

    name = "prompt"
    reads = frozenset({"in_flight"})
    request_reads = frozenset({"model_key", "prompt_tokens"})

    def __init__(self, config: Signal.Config) -> None:
        super().__init__(config)
        self.settles = 0
        self.learned = 0.0  # guarded by invalidate()

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str:
        return request.model_key

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list:
        return [node.in_flight + self.learned for node in nodes]

    def settle(self, request: InferenceRequest, nodes: Sequence[NodeView], values: list):
        self.settles += 1
        return [1.0 / (1 + value + request.prompt_tokens / 1000) for value in values], None

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        return self.settle(request, [node], self.node_values(request, [node]))[0][0]

    def learn(self, amount: float) -> None:
        self.learned = amount
        self.invalidate()


def test_a_signal_is_not_called_when_nothing_it_declares_it_reads_moved() -> None:
    cached, plain, signal = _pair(PromptSignal)
    views = _plain_views(30)
    views[3].in_flight = 2
    _same(cached, plain, views, prompt_tokens=100)
    assert signal.settles == 1
    _same(cached, plain, views, prompt_tokens=100)
    views[8].vram_used = 7  # a field it does not read
    _same(cached, plain, views, prompt_tokens=100)
    assert signal.settles == 1  # its last scores stood


def test_a_signal_is_called_when_a_request_field_it_reads_differs() -> None:
    cached, plain, signal = _pair(PromptSignal)
    views = _plain_views(30)
    views[3].in_flight = 2
    _same(cached, plain, views, prompt_tokens=100)
    _same(cached, plain, views, prompt_tokens=5000)
    assert signal.settles == 2
    _same(cached, plain, views, prompt_tokens=5000, num_predict=7)  # one it does not read
    assert signal.settles == 2


def test_a_signal_is_called_when_a_field_it_reads_changed() -> None:
    cached, plain, signal = _pair(PromptSignal)
    views = _plain_views(30)
    _same(cached, plain, views, prompt_tokens=100)
    views[6].in_flight = 4
    _same(cached, plain, views, prompt_tokens=100)
    assert signal.settles == 2


def test_a_signal_is_called_after_it_invalidated() -> None:
    signal = PromptSignal(Signal.Config())
    other = PromptSignal(Signal.Config())
    cached, plain = Ranker([signal]), Ranker([other], cache=False)
    views = _plain_views(30)
    _same(cached, plain, views, prompt_tokens=100)
    signal.learn(3.0)
    other.learn(3.0)
    _same(cached, plain, views, prompt_tokens=100)
    assert signal.settles == 2


def test_a_signal_with_a_value_that_moves_by_itself_is_called_every_time() -> None:
    class Ticking(PromptSignal):
        ticks = 0

        def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list:
            return [None] * len(nodes)  # (e.g. read off the clock): never kept

        def settle(self, request, nodes, values):
            self.settles += 1
            type(self).ticks += 1
            return [1.0 / (1 + (self.ticks + index) % 7) for index in range(len(nodes))], None

    signal = Ticking(Signal.Config())
    views = _plain_views(30)
    ranker = Ranker([signal])
    first = ranker.rank(_request(), views).totals
    second = ranker.rank(_request(), views).totals
    assert signal.settles == 2 and first != second


@pytest.mark.parametrize(
    ("attribute", "names", "what"),
    [("reads", {"inflight"}, "NodeView"), ("request_reads", {"prompt"}, "request")],
)
def test_a_declaration_naming_no_field_is_refused(attribute: str, names: set, what: str) -> None:
    declared = type("Declared", (InFlightSignal,), {attribute: frozenset(names)})
    with pytest.raises(ValueError, match=f"no {what} field"):
        Ranker([declared(Signal.Config())])


def test_after_a_signal_was_not_called_it_is_asked_only_where_a_read_field_changed() -> None:
    class Both(InFlightSignal):
        request_reads = frozenset({"model_key"})

    cached, plain, signal = _pair(Both)
    views = _plain_views(30)
    _same(cached, plain, views)
    signal.asked.clear()
    views[4].vram_used = 5  # not called for this
    _same(cached, plain, views)
    views[7].in_flight = 3
    _same(cached, plain, views)
    assert signal.asked == ["n7"]


# --- one changed node's value, patched in place of the list ----------------------------


def test_one_changed_value_equal_but_of_another_sign_is_taken() -> None:
    class Signed(InFlightSignal):
        def score(self, request: InferenceRequest, node: NodeView) -> float:
            return -0.0 if node.in_flight % 2 else 0.0  # equal, printed apart

    cached, plain, _ = _pair(Signed)
    views = _plain_views(30)
    _same(cached, plain, views)
    views[3].in_flight = 1
    _same(cached, plain, views)
    assert repr(cached.rank(_request(), views).scores["n3"]["in-flight"]) == "-0.0"


def test_one_changed_value_that_moves_by_itself_is_asked_each_time() -> None:
    class Moving(InFlightSignal):
        def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list:
            return [None if node.in_flight else 1.0 for node in nodes]  # None: not kept

    cached, plain, _ = _pair(Moving)
    views = _plain_views(30)
    _same(cached, plain, views)
    views[3].in_flight = 1
    _same(cached, plain, views)
    views[3].in_flight = 0
    _same(cached, plain, views)
    views[5].in_flight = 3
    _same(cached, plain, views)
