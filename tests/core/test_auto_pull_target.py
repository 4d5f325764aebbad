"""Where an auto-pull goes: a node that can hold the model, by the best knowledge there is."""

from __future__ import annotations

from types import SimpleNamespace

from herd._engine.scheduling.auto_pull import expected_size, pull_target

from tests.plugins.node_factory import make_node

GB = 10**9


def _fleet(*views):
    return SimpleNamespace(nodes={v.name: SimpleNamespace(name=v.name, view=v) for v in views})


def test_a_model_size_is_guessed_from_its_name() -> None:
    assert expected_size("qwen3:30b") == 18 * GB
    assert expected_size("llama3.2:3b") == int(1.8 * GB)
    assert expected_size("mystery:latest") == 0


def test_an_agent_reported_node_too_small_is_never_chosen_when_another_can_hold_it() -> None:
    small = make_node("small", disk={}, vram_gb=8)  # an empty disk: the old tie-breaker
    big = make_node("big", disk={"a:1b": 50, "b:1b": 50}, vram_gb=192)
    assert pull_target(_fleet(small, big), "text", "qwen3:30b").name == "big"


def test_agentless_nodes_are_judged_by_the_memory_they_were_seen_to_use() -> None:
    small = make_node("small", disk={}, vram_seen=7 * GB)
    big = make_node("big", disk={"a:1b": 50}, vram_seen=40 * GB)
    assert pull_target(_fleet(small, big), "text", "qwen3:30b").name == "big"
    # a learned lower bound never says "too small": with nothing better, it is a candidate
    assert pull_target(_fleet(small), "text", "qwen3:30b").name == "small"
