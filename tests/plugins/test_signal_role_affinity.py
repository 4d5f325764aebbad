"""Role affinity: small models keep to small machines, big machines stay free."""

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
    result = score_all(make_signal(RoleAffinitySignal), make_request("m:1b"), [node])
    assert result == [pytest.approx(expected)]


def test_small_model_prefers_the_small_machine() -> None:
    small, big = make_node("small", vram_gb=8), make_node("big", vram_gb=96)
    low, high = score_all(make_signal(RoleAffinitySignal), make_request(), [big, small])
    assert high > low
