"""Thermal: hot beats loading beats warm beats cold beats absent."""

from __future__ import annotations

import time

import pytest
from herd_plugins.signal_thermal import ThermalSignal

from tests.plugins.node_factory import MODEL, make_node, make_request, make_signal


def _loading(view):
    view.loading[MODEL] = 0
    return view


def _warm(seconds_ago: float):
    def mark(view):
        view.unloaded_at[MODEL] = time.time() - seconds_ago
        return view

    return mark


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (lambda v: v, 0.2),  # cold: on disk only
        (lambda v: make_node(loaded={MODEL: 4096}), 1.0),  # hot
        (_loading, 0.9),
        (_warm(60), 0.5),
        (_warm(3600), 0.2),  # left memory too long ago: cold again
        (lambda v: make_node(disk={}), 0.0),  # absent
    ],
)
def test_thermal_scores_each_state(state, expected) -> None:
    signal = make_signal(ThermalSignal)
    view = state(make_node())
    assert signal.score(make_request(), view) == pytest.approx(expected)


def test_thermal_options_come_from_yaml() -> None:
    signal = make_signal(ThermalSignal, weight=5, cold=0.1, warm=0.7, warm_window_s=10)
    assert signal.weight == 5
    assert signal.score(make_request(), make_node()) == pytest.approx(0.1)
    assert signal.score(make_request(), _warm(5)(make_node())) == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("size_gb", "expected"),
    [
        (0.045, 0.2 + 0.8 * (1 - 0.045e9 / 1024**3)),  # an embedding model: nearly hot
        (0.5, 0.2 + 0.8 * (1 - 0.5e9 / 1024**3)),
        (2.0, 0.2),  # from quick_load_bytes up, a cold load costs the full penalty
    ],
)
def test_cold_penalty_shrinks_for_models_that_load_at_once(size_gb, expected) -> None:
    signal = make_signal(ThermalSignal)
    view = make_node(disk={MODEL: size_gb})
    assert signal.score(make_request(), view) == pytest.approx(expected)
