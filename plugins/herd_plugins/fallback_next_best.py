"""Fallback policy: the best-ranked node not tried yet, and VRAM-aware model fallback."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from herd import FallbackPolicy, InferenceRequest, ModelEntry, NodeView, hookimpl

GB = 1e9
_NAME_HINTS = (
    ("embedding", ("embed", "minilm", "bge-", "e5-", "gte-")),
    ("vision", ("llava", "vision", "-vl", "moondream", "minicpm-v", "gemma3")),
    ("coding", ("code", "coder", "codestral", "starcoder", "devstral")),
    ("reasoning", ("deepseek-r1", "qwq", "reason", "think", "magistral", "phi4-reasoning")),
)


def category_of(key: str, entry: ModelEntry | None, overrides: dict[str, str]) -> str:
    """``general``, ``coding``, ``reasoning``, ``vision`` or ``embedding``: from YAML, else
    the model's capabilities, else words in its name."""
    if key in overrides:
        return overrides[key]
    capabilities = entry.capabilities if entry is not None else []
    if "embedding" in capabilities:
        return "embedding"
    if "vision" in capabilities:
        return "vision"
    name = key.rsplit("/", 1)[-1]
    for category, words in _NAME_HINTS:
        if any(word in name for word in words):
            return category
    if "thinking" in capabilities:
        return "reasoning"
    return "general"


def has_vision(key: str, entry: ModelEntry | None) -> bool:
    """Whether the model reads images: its capabilities say so (or, when the node does not
    report capabilities, its name). A YAML category never makes a model see."""
    if entry is not None and entry.capabilities:
        return "vision" in entry.capabilities
    name = key.rsplit("/", 1)[-1]
    return any(word in name for word in _NAME_HINTS[1][1])


class NextBestPolicy(FallbackPolicy):
    """After a failure: the best-ranked node not tried yet that is not offline.

    Model fallback (``substitute``), when the requested model is loaded on no node:
    first the client's own ``fallback_models`` that is loaded somewhere; then, with YAML
    ``routing.vram_fallback: true`` and a cold load estimated above ``min_cold_start_s``
    (``load_s_per_gb`` times its size), the loaded model of the same category closest in
    size. A request with images only ever gets a vision model.
    """

    name = "next-best"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        min_cold_start_s: float = 10.0
        load_s_per_gb: float = 2.0
        categories: dict[str, str] = {}

    def next_node(
        self, request: InferenceRequest, ranked: list[NodeView], tried: list[str]
    ) -> NodeView | None:
        for node in ranked:
            if node.name not in tried and node.status != "offline":
                return node
        return None

    def substitute(
        self, request: InferenceRequest, nodes: Sequence[NodeView], same_category: bool
    ) -> str | None:
        key = request.model_key
        entries: dict[str, ModelEntry] = {}
        hot: set[str] = set()
        for node in nodes:
            entries.update(node.models)
            hot.update(node.loaded)
            hot.update(node.loading)
        overrides = self.config.categories
        needs_vision = request.images > 0

        def usable(model: str) -> bool:
            return not needs_vision or has_vision(model, entries.get(model))

        for wanted in request.fallback_models:
            if (wanted in hot or key not in entries) and wanted in entries and usable(wanted):
                return wanted
        if not same_category or key not in entries:
            return None
        size = entries[key].size
        if size / GB * self.config.load_s_per_gb < self.config.min_cold_start_s:
            return None
        category = category_of(key, entries[key], overrides)
        choices = [
            model
            for model in hot
            if model != key
            and model in entries
            and category_of(model, entries[model], overrides) == category
            and usable(model)
        ]
        if not choices:
            return None
        return min(choices, key=lambda model: (abs(entries[model].size - size), model))


@hookimpl
def herd_register_fallback_policies() -> list[type[FallbackPolicy]]:
    return [NextBestPolicy]
