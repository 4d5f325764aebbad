"""Role affinity: big machines first (default), or best-fit packing."""

from __future__ import annotations

import pytest
from herd_plugins.signal_role_affinity import RoleAffinitySignal

from tests.plugins.node_factory import make_node, make_request, make_signal, score_all


@pytest.mark.parametrize(
    ("model_gb", "vram_gb", "expected"),
    [
        (2.0, 8, (2 / 8 / 0.5) ** 0.5),
        (2.0, 96, (2 / 96 / 0.5) ** 0.5),
        (20.0, 24, 1.0),
        (20.0, 96, (20 / 96 / 0.5) ** 0.5),
        (2.0, 0, 0.5),  # memory unknown
    ],
)
def test_role_affinity_scores_the_share_of_memory(model_gb, vram_gb, expected) -> None:
    node = make_node(disk={"m:1b": model_gb}, vram_gb=vram_gb)
    signal = make_signal(RoleAffinitySignal, mode="best-fit")
    result = score_all(signal, make_request("m:1b"), [node])
    assert result == [pytest.approx(expected)]


def test_best_fit_keeps_a_small_model_on_the_small_machine() -> None:
    small, big = make_node("small", vram_gb=8), make_node("big", vram_gb=96)
    signal = make_signal(RoleAffinitySignal, mode="best-fit")
    low, high = score_all(signal, make_request(), [big, small])
    assert high > low


def test_big_first_prefers_the_biggest_machine_reported() -> None:
    small, big = make_node("small", vram_gb=8), make_node("big", vram_gb=96)
    learned = make_node("learned", vram_seen=24 * 10**9)  # agentless: a lower bound only
    unknown = make_node("unknown")
    scores = score_all(
        make_signal(RoleAffinitySignal), make_request(), [small, big, learned, unknown]
    )
    assert scores[1] == 1.0 and scores[0] == pytest.approx((8 / 96) ** 0.5)
    assert scores[2] == scores[3] == 0.5  # what a node was seen using is not its size
