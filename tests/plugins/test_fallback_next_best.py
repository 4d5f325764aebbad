"""The next-best policy: retry order, and which model may stand in for another."""

from __future__ import annotations

import pytest
from herd import ModelEntry
from herd_plugins.fallback_next_best import NextBestPolicy, category_of

from tests.plugins.node_factory import make_node, make_request, make_signal

WANTED = "qwen2.5:32b"


def fleet():
    """The wanted 32B model on disk only; a general 7B, a coder and a vision model loaded."""
    disk = {WANTED: 20.0, "llama3.1:8b": 4.9, "qwen2.5-coder:7b": 4.7, "llava:7b": 4.7}
    a = make_node("a", disk=disk, loaded={"llama3.1:8b": 4096, "qwen2.5-coder:7b": 4096})
    b = make_node("b", disk=disk, loaded={"llava:7b": 4096})
    b.models["llava:7b"].capabilities = ["completion", "vision"]
    return [a, b]


def policy(**config):
    return make_signal(NextBestPolicy, **config)


def test_next_node_walks_down_the_ranking_skipping_tried_and_offline() -> None:
    a, b, c = make_node("a"), make_node("b", status="offline"), make_node("c")
    assert policy().next_node(make_request(), [a, b, c], ["a"]) is c
    assert policy().next_node(make_request(), [a, b, c], ["a", "c"]) is None


def test_a_loaded_model_of_the_same_category_stands_in_for_a_long_cold_load() -> None:
    substitute = policy().substitute(make_request(WANTED), fleet(), same_category=True)
    assert substitute == "llama3.1:8b"  # general, like the 32B; not the coder


def test_no_substitute_unless_vram_fallback_is_on_or_the_load_is_short() -> None:
    assert policy().substitute(make_request(WANTED), fleet(), same_category=False) is None
    quick = policy(min_cold_start_s=60)  # 20 GB x 2 s/GB = 40 s: not long enough
    assert quick.substitute(make_request(WANTED), fleet(), same_category=True) is None


def test_an_image_request_only_ever_gets_a_vision_model() -> None:
    request = make_request(WANTED, images=1)
    assert policy().substitute(request, fleet(), same_category=True) is None
    request = make_request(WANTED, images=1, fallback_models=["llama3.1:8b", "llava:7b"])
    assert policy().substitute(request, fleet(), same_category=False) == "llava:7b"


def test_the_clients_own_list_comes_first_and_in_order() -> None:
    request = make_request(WANTED, fallback_models=["missing:1b", "qwen2.5-coder:7b"])
    assert policy().substitute(request, fleet(), same_category=True) == "qwen2.5-coder:7b"


def test_a_model_no_node_has_falls_back_to_the_first_listed_model_that_exists() -> None:
    request = make_request("nowhere:1b", fallback_models=["missing:1b", "llava:7b"])
    assert policy().substitute(request, fleet(), same_category=False) == "llava:7b"


@pytest.mark.parametrize(
    ("name", "capabilities", "category"),
    [
        ("nomic-embed-text:latest", [], "embedding"),
        ("all-minilm:latest", ["embedding"], "embedding"),
        ("llava:7b", [], "vision"),
        ("qwen2.5-coder:7b", ["completion"], "coding"),
        ("deepseek-r1:8b", [], "reasoning"),
        ("qwen3:4b", ["completion", "thinking"], "reasoning"),
        ("llama3.2:3b", ["completion", "tools"], "general"),
    ],
)
def test_categories_come_from_capabilities_and_names(name, capabilities, category) -> None:
    entry = ModelEntry(name=name, key=name, capabilities=capabilities)
    assert category_of(name, entry, {}) == category
    assert category_of(name, entry, {name: "coding"}) == "coding"  # YAML overrides
