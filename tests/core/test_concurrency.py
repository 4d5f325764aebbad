"""The adaptive concurrency limit, driven by synthetic latencies (no clock, no node)."""

from __future__ import annotations

from herd._engine.scheduling.concurrency import AdaptiveLimit


def _serve(limit: AdaptiveLimit, slots: int, demand: int, requests: int, service_s=0.16):
    """Emulate a node with ``slots`` parallel slots and ``demand`` requests always waiting:
    each request the router lets through beyond the node's slots waits inside the node
    for a whole service time per round ahead of it."""
    for _ in range(requests):
        sent = min(limit.limit, demand)
        for position in range(sent):
            waits = position // slots
            limit.sample(ttft_s=0.01 + waits * service_s, per_token_s=0.005, in_flight=sent)


def test_it_grows_from_the_start_to_a_wide_nodes_parallelism() -> None:
    limit = AdaptiveLimit(4)
    _serve(limit, slots=64, demand=64, requests=8)
    assert limit.limit >= 60  # doubled per round: 4, 8, 16, 32, 64


def test_it_never_grows_past_the_demand_it_has_seen() -> None:
    limit = AdaptiveLimit(4)
    _serve(limit, slots=256, demand=10, requests=50)
    assert limit.limit <= 16  # the limit is raised only when requests reached it


def test_it_shrinks_to_a_single_slot_node() -> None:
    limit = AdaptiveLimit(4)
    _serve(limit, slots=1, demand=64, requests=20)
    assert limit.limit <= 2  # it probes 2 now and then, and falls back to 1


def test_it_settles_near_a_nodes_parallelism_after_overshooting() -> None:
    limit = AdaptiveLimit(4)
    _serve(limit, slots=8, demand=64, requests=60)
    assert 4 <= limit.limit <= 12


def test_slower_tokens_count_as_degradation_too() -> None:
    limit = AdaptiveLimit(16)
    for _ in range(16):
        limit.sample(ttft_s=0.05, per_token_s=0.01, in_flight=16)
    assert limit.limit == 32
    for _ in range(32):  # twice the requests, every token ten times slower: fewer tokens/s
        limit.sample(ttft_s=0.05, per_token_s=0.1, in_flight=32)
    assert limit.degraded and limit.limit < 32


def test_an_idle_node_keeps_its_limit_and_bounds_hold() -> None:
    limit = AdaptiveLimit(4, max_limit=6)
    for _ in range(40):
        limit.sample(ttft_s=0.05, per_token_s=None, in_flight=1)
    assert limit.limit == 4  # never tested: never raised
    for _ in range(40):
        limit.sample(ttft_s=0.05, per_token_s=None, in_flight=6)
    assert limit.limit == 6
    small = AdaptiveLimit(1)
    small.sample(ttft_s=0.05, per_token_s=None, in_flight=1)
    for _ in range(10):  # every later request waits: degraded, and 1 is the floor
        small.sample(ttft_s=5.0, per_token_s=None, in_flight=1)
    assert small.degraded and small.limit == 1


def test_a_starved_hosts_delays_are_not_taken_for_full_slots() -> None:
    limit = AdaptiveLimit(8)
    limit.sample(ttft_s=0.001, per_token_s=0.005, in_flight=8, slack_s=0.05, service_s=0.16)
    for _ in range(7):  # everything slower, the waits a fifth of the slowed service
        limit.sample(ttft_s=0.1, per_token_s=0.015, in_flight=8, slack_s=0.05, service_s=0.5)
    assert not limit.degraded and limit.limit == 16
    for _ in range(16):  # now each waits a whole service time: the slots are full
        limit.sample(ttft_s=0.5, per_token_s=0.015, in_flight=16, slack_s=0.05, service_s=0.5)
    assert limit.degraded and limit.limit == 8


def test_requests_sent_before_a_cut_do_not_cut_again() -> None:
    limit = AdaptiveLimit(16)
    limit.sample(ttft_s=0.01, per_token_s=None, in_flight=1, service_s=0.5)
    for _ in range(15):  # full slots: cut to 8
        limit.sample(ttft_s=0.5, per_token_s=None, in_flight=16, service_s=0.5)
    assert limit.limit == 8
    for _ in range(16):  # stragglers sent with 16 in flight, finishing late: ignored
        limit.sample(ttft_s=0.5, per_token_s=None, in_flight=16, service_s=0.5)
    assert limit.limit == 8


def test_a_refusal_brings_the_limit_down_and_it_never_grows_back_to_it() -> None:
    """The node said "full" with 3 requests in flight: it holds 2 at most, at once, and
    clean, saturated rounds afterwards never probe 3 again (a node that cuts a running
    stream for a new one would break an answer per probe)."""
    limit = AdaptiveLimit(4)
    _serve(limit, slots=64, demand=64, requests=3)  # slow start: far above 4 by now
    assert limit.limit > 8
    limit.refused(in_flight=3)
    assert limit.limit == 2
    for _ in range(40):  # fast, clean rounds with every slot used
        for _ in range(limit.limit):
            limit.sample(ttft_s=0.01, per_token_s=0.005, in_flight=limit.limit)
    assert limit.limit == 2
    limit.refused(in_flight=1)  # never below the floor
    assert limit.limit == 1
