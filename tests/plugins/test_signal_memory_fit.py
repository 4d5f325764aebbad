"""Memory fit: loaded, fits, must evict, must wait, or cannot fit at all."""

from __future__ import annotations

import msgspec
import pytest
from herd_plugins.signal_memory_fit import MemoryFitSignal

from tests.plugins.node_factory import GB, MODEL, make_node, make_request, make_signal, score_all

BIG = "big:70b"


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (make_node(loaded={MODEL: 4096}, vram_gb=8), 1.0),
        (make_node(vram_gb=0), 0.7),  # memory not reported: unknown
        (make_node(vram_gb=24), pytest.approx(0.8 + 0.2 * (1 - 5.085 / 24), abs=0.01)),
        (
            make_node(disk={MODEL: 4.7, "other:8b": 5.0}, loaded={"other:8b": 4096}, vram_gb=8),
            0.4,  # fits once the idle other model is evicted
        ),
        (
            make_node(
                disk={MODEL: 4.7, "other:8b": 5.0},
                loaded={"other:8b": 4096},
                in_flight={"other:8b": 1},
                vram_gb=8,
            ),
            0.2,  # the other model is busy: fits only once it finishes
        ),
    ],
)
def test_memory_fit_scores(node, expected) -> None:
    assert score_all(make_signal(MemoryFitSignal), make_request(), [node]) == [expected]


def test_a_node_too_small_is_rejected_when_another_fits() -> None:
    small = make_node("small", disk={BIG: 40}, vram_gb=24)
    large = make_node("large", disk={BIG: 40}, vram_gb=80)
    signal = make_signal(MemoryFitSignal)
    rejected = signal.prepare(make_request(BIG), [small, large])
    assert set(rejected) == {"small"}
    assert "needs 43.3 GB, node has 24.0 GB in all" in rejected["small"]
    assert signal.scores(make_request(BIG), [large])[0] > 0.8


def test_nothing_is_rejected_when_no_node_fits() -> None:
    nodes = [make_node(n, disk={BIG: 40}, vram_gb=24) for n in ("a", "b")]
    assert make_signal(MemoryFitSignal).prepare(make_request(BIG), nodes) is None


def test_measured_resident_size_beats_the_estimate() -> None:
    signal = make_signal(MemoryFitSignal)
    hot = make_node("hot", disk={MODEL: 4.7}, loaded={MODEL: 4096})
    # what /api/ps said: a big context (entries are frozen: a changed copy replaces it)
    hot.loaded[MODEL] = msgspec.structs.replace(hot.loaded[MODEL], size=9 * 10**9)
    assert signal.needed_bytes(make_request(), [hot, make_node("cold")]) == 9 * 10**9


def test_agentless_memory_is_learned_from_ps_and_a_partly_offloaded_copy_scores_low() -> None:
    from herd import LoadedModel
    from herd._engine.fleet.registry import note_memory_changes
    from herd_plugins.signal_memory_fit import MemoryFitSignal

    view = make_node("a", disk={"big:18b": 18.0, "small:3b": 2.0})
    loaded = {
        "small:3b": LoadedModel(name="small:3b", key="small:3b", size=2 * GB, size_vram=2 * GB),
        "big:18b": LoadedModel(name="big:18b", key="big:18b", size=18 * GB, size_vram=6 * GB),
    }
    note_memory_changes(view, loaded, 0.0)
    view.loaded = loaded
    assert view.vram_seen == 8 * GB and view.memory() == (8 * GB, False)
    signal = make_signal(MemoryFitSignal)
    assert score_all(signal, make_request("big:18b"), [view]) == [0.2]  # offloaded


def test_a_node_that_fits_by_evicting_follows_its_other_models_requests_through_the_cache():
    """Whether the other model is idle moves with every request there: not a cached value
    (memory-fit does not read in-flight counts for its cache), worked out each decision."""
    from herd._engine.scheduling.ranking import Ranker

    def fleet() -> list:
        nodes = [make_node(f"n{i}", vram_gb=24) for i in range(29)]
        crowded = make_node(
            "crowded", disk={MODEL: 4.7, "other:8b": 5.0}, loaded={"other:8b": 4096}, vram_gb=8
        )
        return [*nodes, crowded]

    cached = Ranker([make_signal(MemoryFitSignal)])
    views = fleet()
    scores = []
    for busy in (0, 1, 0):
        views[-1].in_flight_by_model["other:8b"] = busy
        scores.append(cached.rank(make_request(), views).scores["crowded"]["memory-fit"])
    assert scores == [0.4, 0.2, 0.4]


def test_a_changed_resident_size_invalidates_what_was_sized_by_the_old_one() -> None:
    signal = make_signal(MemoryFitSignal)
    nodes = [make_node(loaded={MODEL: 4096}, vram_gb=24)]
    signal.needed_bytes(make_request(), nodes)
    before = signal._invalidated_at
    signal.needed_bytes(make_request(), nodes)
    assert signal._invalidated_at == before  # the same size: nothing to ask again
    entry = nodes[0].loaded[MODEL]
    nodes[0].loaded[MODEL] = msgspec.structs.replace(entry, size=entry.size * 2)
    signal.needed_bytes(make_request(), nodes)
    assert signal._invalidated_at > before  # a decision skipping memory-fit would miss it
