"""The next-best policy: retry order, and which model may stand in for another."""

from __future__ import annotations

import msgspec
import pytest
from herd import ModelEntry
from herd_plugins.fallback_next_best import NextBestPolicy, category_of, kind_of

from tests.plugins.node_factory import make_node, make_request, make_signal

WANTED = "qwen2.5:32b"


def fleet():
    """The wanted 32B model on disk only; a general 7B, a coder and a vision model loaded."""
    disk = {WANTED: 20.0, "llama3.1:8b": 4.9, "qwen2.5-coder:7b": 4.7, "llava:7b": 4.7}
    a = make_node("a", disk=disk, loaded={"llama3.1:8b": 4096, "qwen2.5-coder:7b": 4096})
    b = make_node("b", disk=disk, loaded={"llava:7b": 4096})
    b.models["llava:7b"] = msgspec.structs.replace(
        b.models["llava:7b"], capabilities=["completion", "vision"]
    )
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
        ("llava:7b", ["completion"], "general"),  # the node says it does not see
        ("gemma3:1b", ["completion"], "general"),
        ("gemma3:1b", [], "general"),  # no longer "vision" by name
        ("gemma3:4b", ["completion", "vision"], "vision"),
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


def _fleet_with(loaded_model: str, capabilities: list[str], wanted: str = "phi4:14b") -> list:
    """``wanted`` (14 GB, a long cold load) on disk only; ``loaded_model`` loaded."""
    node = make_node("a", disk={wanted: 14.0, loaded_model: 12.0}, loaded={loaded_model: 4096})
    node.models[wanted] = msgspec.structs.replace(node.models[wanted], capabilities=["completion"])
    node.models[loaded_model] = msgspec.structs.replace(
        node.models[loaded_model], capabilities=capabilities
    )
    return [node]


def test_an_image_model_never_stands_in_for_a_chat_model() -> None:
    nodes = _fleet_with("x/z-image-turbo:latest", ["image"])
    assert policy().substitute(make_request("phi4:14b"), nodes, same_category=True) is None
    # nor from the client's own list: it would answer a chat with a 400
    request = make_request("phi4:14b", fallback_models=["x/z-image-turbo:latest"])
    assert policy().substitute(request, nodes, same_category=True) is None


def test_an_audio_model_never_stands_in_for_a_chat_model() -> None:
    nodes = _fleet_with("sim-whisper:tiny", ["audio"])
    assert policy().substitute(make_request("phi4:14b"), nodes, same_category=True) is None


def test_kinds_come_from_capabilities_first_and_names_last() -> None:
    assert kind_of("x/z-image-turbo:latest", None) == "image"  # by name, when none reported
    assert kind_of("whisper:small", None) == "speech"
    assert kind_of("mystery:1b", ModelEntry(name="m", key="m", capabilities=["image"])) == "image"
    assert kind_of(
        "whisper-chat:1b", ModelEntry(name="w", key="w", capabilities=["completion"])
    ) == ("chat")  # the node's word beats the name
    assert kind_of("nomic-embed-text:latest", None) == "embedding"


def test_a_vision_model_by_name_serves_images_only_when_no_capabilities_are_reported() -> None:
    node = make_node(
        "a",
        disk={"phi4:14b": 14.0, "llava:13b": 12.0, "gemma3:12b": 12.0},
        loaded={"llava:13b": 4096, "gemma3:12b": 4096},
    )
    request = make_request("phi4:14b", images=1, fallback_models=["gemma3:12b", "llava:13b"])
    # neither reports capabilities: llava sees by name, gemma3 is not taken on its name
    assert policy().substitute(request, [node], same_category=False) == "llava:13b"
    node.models["llava:13b"] = msgspec.structs.replace(
        node.models["llava:13b"], capabilities=["completion"]
    )  # the node says: no vision
    assert policy().substitute(request, [node], same_category=False) is None
    node.models["gemma3:12b"] = msgspec.structs.replace(
        node.models["gemma3:12b"], capabilities=["completion", "vision"]
    )
    assert policy().substitute(request, [node], same_category=False) == "gemma3:12b"
