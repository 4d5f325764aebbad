"""Availability: recent failures, degraded state and coming back from offline lower it."""

from __future__ import annotations

import time

import pytest
from herd.trace import AttemptRecord
from herd_plugins.signal_availability import AvailabilitySignal

from tests.plugins.node_factory import make_node, make_request, make_signal
from tests.plugins.trace_factory import make_trace


def failed_attempt(node: str, status: int = 0) -> AttemptRecord:
    return AttemptRecord(node, time.time(), time.time(), "connection refused", status)


def test_a_node_with_no_history_is_fully_available() -> None:
    assert make_signal(AvailabilitySignal).score(make_request(), make_node()) == 1.0


def test_failures_lower_the_score_and_successes_restore_it() -> None:
    signal = make_signal(AvailabilitySignal, prior_successes=5)
    trace = make_trace(node="b", attempts=[failed_attempt("a"), AttemptRecord("b", 0, 0)])
    for _ in range(5):
        signal.observe(trace)
    a, b = make_node("a"), make_node("b")
    assert signal.score(make_request(), a) == pytest.approx(5 / 10, abs=0.01)
    assert signal.score(make_request(), b) == 1.0
    for _ in range(45):
        signal.observe(make_trace(node="a", attempts=[AttemptRecord("a", 0, 0)]))
    assert signal.score(make_request(), a) == pytest.approx(50 / 55, abs=0.01)


@pytest.mark.parametrize("status", [404, 503])
def test_not_found_and_busy_are_not_the_nodes_fault(status) -> None:
    signal = make_signal(AvailabilitySignal)
    signal.observe(make_trace(node="b", attempts=[failed_attempt("a", status)]))
    assert signal.score(make_request(), make_node("a")) == 1.0


def test_a_stream_that_broke_counts_against_its_node() -> None:
    signal = make_signal(AvailabilitySignal, prior_successes=1)
    signal.observe(make_trace(node="a", status="failed", attempts=[AttemptRecord("a", 0, 0)]))
    assert signal.score(make_request(), make_node("a")) == pytest.approx(2 / 3, abs=0.01)


def test_degraded_and_rejoined_nodes_score_lower() -> None:
    signal = make_signal(AvailabilitySignal, degraded=0.5, rejoin_penalty=0.3)
    assert signal.score(make_request(), make_node(status="degraded")) == 0.5
    node = make_node("flappy", online_since=time.time() - 3600)
    assert signal.score(make_request(), node) == 1.0  # first seen: nothing to hold against it
    node.online_since = time.time()  # it went offline and came back just now
    assert signal.score(make_request(), node) == pytest.approx(0.7, abs=0.01)
