"""The default weights, worked through: who wins between two nodes, and why (docs/routing.md)."""

from __future__ import annotations

import time

import pytest
from herd._engine.config import load_settings
from herd._engine.gateway import Gateway
from herd._engine.plugins import make_plugin_manager
from herd._engine.scheduling.ranking import Ranker
from herd.interfaces import Signal

from tests.plugins.node_factory import MODEL, make_node, make_request


def default_ranker(**signal_options) -> Ranker:
    settings = load_settings(None, env={}, overrides={"routing": {"signals": signal_options}})
    return Ranker(Gateway(settings, make_plugin_manager(settings, env={})).signals)


def hot(name: str, busy: int = 0, queued: int = 0):
    return make_node(name, loaded={MODEL: 4096}, in_flight={MODEL: busy}, queued={MODEL: queued})


def warm(name: str):
    view = make_node(name)
    view.unloaded_at[MODEL] = time.time() - 60
    return view


@pytest.mark.parametrize("vram_gb", [0, 24])  # agentless (memory unknown) and agent-reported
@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        (lambda: hot("hot"), lambda: make_node("cold"), "hot"),
        (lambda: hot("hot", busy=1), lambda: warm("warm"), "hot"),
        (lambda: hot("hot", busy=3), lambda: warm("warm"), "hot"),  # a slot is still free
        (lambda: hot("hot", busy=4), lambda: warm("warm"), "warm"),  # saturated loses
        (lambda: hot("hot", busy=4), lambda: make_node("cold"), "hot"),  # one wait < cold load
        (lambda: hot("hot", busy=4, queued=4), lambda: make_node("cold"), "cold"),
        (lambda: hot("busy", busy=2), lambda: hot("idle"), "idle"),
    ],
)
def test_default_weights_pick_the_node_that_answers_first(first, second, winner, vram_gb) -> None:
    nodes = [first(), second()]
    for view in nodes:
        view.vram_total = int(vram_gb * 1e9)
    decision = default_ranker().rank(make_request(prompt_tokens=200), nodes)
    assert decision.ranked[0].name == winner
    for name, total in decision.totals.items():
        assert 0.0 <= total <= 1.0
        assert set(decision.scores[name]) == {
            "thermal",
            "memory-fit",
            "queue-depth",
            "wait-time",
            "role-affinity",
            "availability",
            "context-fit",
            "session-affinity",
        }


def test_the_total_is_the_weighted_mean_of_the_signals() -> None:
    ranker = default_ranker()
    decision = ranker.rank(make_request(), [hot("a")])
    weights = {s.name: s.weight for s in ranker.signals}
    expected = sum(weights[n] * v for n, v in decision.scores["a"].items()) / sum(weights.values())
    assert decision.totals["a"] == pytest.approx(expected)


def test_rejections_name_the_node_and_the_reason() -> None:
    nodes = [
        make_node("off", status="offline"),
        make_node("draining", draining=True),
        make_node("empty", disk={}),
        make_node("small", disk={MODEL: 40}, vram_gb=24),
        make_node("large", disk={MODEL: 40}, vram_gb=80),
    ]
    decision = default_ranker().rank(make_request(), nodes)
    assert [v.name for v in decision.ranked] == ["large"]
    assert decision.rejections == {
        "off": "node offline",
        "draining": "node draining",
        "empty": "model not on this node",
        "small": "memory-fit: needs 43.3 GB, node has 24.0 GB in all",
    }


def test_degraded_nodes_come_after_every_healthy_one() -> None:
    nodes = [hot("sick"), make_node("cold")]
    nodes[0].status = "degraded"  # missed heartbeats: served only as a last resort
    decision = default_ranker().rank(make_request(), nodes)
    assert [v.name for v in decision.ranked] == ["cold", "sick"]
    assert decision.totals["sick"] > decision.totals["cold"]  # even though it scores higher


def test_ties_keep_configuration_order_and_zero_weight_disables_a_signal() -> None:
    ranker = default_ranker(thermal={"weight": 0})
    assert "thermal" not in {s.name for s in ranker.signals}
    decision = ranker.rank(make_request(), [make_node("a"), make_node("b"), make_node("c")])
    assert [v.name for v in decision.ranked] == ["a", "b", "c"]


def test_totals_add_the_weighted_scores_left_to_right_in_signal_order() -> None:
    ranker = default_ranker()
    nodes = [hot("a"), hot("b", busy=3), warm("c"), make_node("d")]
    decision = ranker.rank(make_request(), nodes)
    shares = [s.weight / ranker.weight_sum for s in ranker.signals]
    for view in nodes:
        row = [decision.scores[view.name][s.name] for s in ranker.signals]
        expected = 0.0
        for score, share in zip(row, shares, strict=True):
            expected += score * share  # exactly: ties between nodes depend on the last bit
        assert decision.totals[view.name] == expected
        assert decision.total_of(view.name) == expected
    assert decision.total_of("nowhere") == 0.0


class _ByName(Signal):
    name = "by-name"

    def score(self, request, node) -> float:
        return {"a": 0.2, "b": 0.9}.get(node.name, 0.5)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_any_number_of_signals_ranks_and_totals(count: int) -> None:
    ranker = Ranker([_ByName(_ByName.Config()) for _ in range(count)])
    decision = ranker.rank(make_request(), [hot("a"), hot("b"), hot("c")])
    assert decision.total_of("b") == decision.totals["b"]  # before and after it is built
    if count:
        assert [v.name for v in decision.ranked] == ["b", "c", "a"]
        assert decision.totals["b"] == pytest.approx(0.9)
    else:
        assert [v.name for v in decision.ranked] == ["a", "b", "c"]  # ties: config order
        assert decision.totals == {"a": 0, "b": 0, "c": 0}
