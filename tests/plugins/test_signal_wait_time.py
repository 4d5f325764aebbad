"""Wait time: priors first, then what the traces teach, per node and model."""

from __future__ import annotations

import random

import pytest
from herd_plugins.running_times import RunningQuantile
from herd_plugins.signal_wait_time import WaitTimeSignal

from tests.plugins.node_factory import MODEL, make_node, make_request, make_signal, score_all
from tests.plugins.trace_factory import make_trace


def signal(**config):
    return make_signal(
        WaitTimeSignal,
        prior_first_token_s=0.5,
        prior_service_s=8.0,
        prior_load_s_per_gb=1.0,
        **config,
    )


@pytest.mark.parametrize(
    ("node", "expected_wait"),
    [
        (make_node(loaded={MODEL: 4096}), 0.5),  # hot, idle: first token only
        (make_node(), 0.5 + 4.7),  # cold: plus the load (1 s/GB x 4.7 GB)
        (make_node(loaded={MODEL: 4096}, in_flight={MODEL: 4}), 0.5 + 8.0 / 4),  # one ahead
        (make_node(loaded={MODEL: 4096}, in_flight={MODEL: 4}, queued={MODEL: 4}), 0.5 + 10.0),
    ],
)
def test_wait_is_estimated_from_priors(node, expected_wait) -> None:
    wait_time = signal()
    assert wait_time.estimate(make_request(), node) == pytest.approx(expected_wait)
    assert wait_time.score(make_request(), node) == pytest.approx(10 / (10 + expected_wait))


def test_traces_teach_the_node_its_own_times() -> None:
    wait_time = signal()
    fast, slow = make_node("fast", loaded={MODEL: 4096}), make_node("slow", loaded={MODEL: 4096})
    for _ in range(30):
        wait_time.observe(make_trace(node="fast", served_model=MODEL, ttft_ms=100.0))
        wait_time.observe(make_trace(node="slow", served_model=MODEL, ttft_ms=3000.0))
    request = make_request()
    assert wait_time.estimate(request, fast) < 0.2
    assert wait_time.estimate(request, slow) > 2.0
    assert wait_time.score(request, fast) > wait_time.score(request, slow)


def test_failed_requests_teach_nothing() -> None:
    wait_time = signal()
    wait_time.observe(make_trace(node="a", served_model=MODEL, ttft_ms=9000.0, status="failed"))
    assert wait_time.estimate(make_request(), make_node(loaded={MODEL: 4096})) == 0.5


def test_running_quantile_settles_near_the_quantile() -> None:
    rng = random.Random(7)
    running = RunningQuantile(1.0)
    for _ in range(4000):
        running.add(rng.uniform(0, 100), 0.75, 0.02)
    assert 60 < running.value < 90


def test_a_loaded_copy_that_answers_sooner_than_a_cold_start_wins_the_column() -> None:
    signal = make_signal(WaitTimeSignal)
    hot = make_node("hot", disk={MODEL: 4.7}, loaded={MODEL: 4096})
    cold = make_node("cold", disk={MODEL: 4.7})
    assert score_all(signal, make_request(), [hot, cold])[1] == 0.0  # 0.5 s against 5.2 s
    # a cold start under prefer_margin_s (a tiny model) is scored, not zeroed
    tiny_hot = make_node("hot", disk={MODEL: 0.05}, loaded={MODEL: 4096})
    tiny_cold = make_node("cold", disk={MODEL: 0.05})
    assert score_all(signal, make_request(), [tiny_hot, tiny_cold])[1] > 0.9
    # a loaded copy with a long queue: the cold node keeps its score
    busy = make_node("hot", disk={MODEL: 4.7}, loaded={MODEL: 4096}, in_flight={MODEL: 4})
    busy.queued_by_model[MODEL] = 8
    assert score_all(signal, make_request(), [busy, cold])[1] > 0.5


def test_a_running_quantile_follows_its_update_rule() -> None:
    # up by rate * q * scale above the estimate, down by rate * (1 - q) * scale otherwise,
    # scale being the running mean (at least 1 ms); never below 0
    picks = random.Random(7)
    for q, rate in [(0.5, 0.1), (0.9, 0.2), (0.1, 0.05)]:
        running, mean, value = RunningQuantile(0.0), 0.0, 0.0
        for _ in range(500):
            sample = picks.choice([0.0, 1e-4, picks.uniform(0, 5), picks.expovariate(0.5)])
            mean += rate * (sample - mean)
            step = rate * max(mean, 1e-3)
            value = max(0.0, value + step * (q - (1.0 if sample <= value else 0.0)))
            running.add(sample, q, rate)
            assert (running.mean, running.value) == (mean, value)
