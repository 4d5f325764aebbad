"""Context fit: the loaded context against the request's tokens and num_ctx."""

from __future__ import annotations

import pytest
from herd_plugins.signal_context_fit import ContextFitSignal

from tests.plugins.node_factory import MODEL, make_node, make_request, make_signal, score_all


@pytest.mark.parametrize(
    ("loaded", "request_fields", "expected"),
    [
        ({MODEL: 8192}, {"prompt_tokens": 1000}, 1.0),  # loaded, fits
        ({}, {"prompt_tokens": 1000}, 1.0),  # loads at the default 4096: fits
        ({}, {"prompt_tokens": 7680}, 0.25),  # default 4096 holds half of 8192
        ({MODEL: 4096}, {"prompt_tokens": 100, "num_ctx": 8192}, 0.3),  # would reload
        ({MODEL: 2048}, {"prompt_tokens": 3584, "num_predict": 512}, 0.25),  # half too small
    ],
)
def test_context_fit_scores(loaded, request_fields, expected) -> None:
    node = make_node(loaded=loaded)
    result = score_all(make_signal(ContextFitSignal), make_request(**request_fields), [node])
    assert result == [pytest.approx(expected)]


def test_a_loaded_context_too_small_is_rejected_only_when_another_node_fits() -> None:
    small = make_node("small", loaded={MODEL: 2048})
    roomy = make_node("roomy", loaded={MODEL: 32768})
    signal = make_signal(ContextFitSignal)
    request = make_request(prompt_tokens=6000)
    rejected = signal.prepare(request, [small, roomy])
    assert set(rejected) == {"small"}
    assert "loaded context 2048 < ~6512 tokens needed" in rejected["small"]
    assert signal.prepare(request, [small]) is None  # alone, it is still the best there is


def test_a_bigger_num_ctx_avoids_reloading_a_loaded_copy() -> None:
    loaded = make_node("loaded", loaded={MODEL: 4096})
    cold = make_node("cold")
    rejected = make_signal(ContextFitSignal).prepare(make_request(num_ctx=16384), [loaded, cold])
    assert set(rejected) == {"loaded"} and "would reload" in rejected["loaded"]
