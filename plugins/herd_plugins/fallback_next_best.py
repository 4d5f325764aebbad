"""Fallback policy: the best-ranked node not tried yet, and VRAM-aware model fallback."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from herd import FallbackPolicy, InferenceRequest, ModelEntry, NodeView, hookimpl

GB = 1e9
# Words in a model's name, consulted only when no node reports its capabilities.
_NAME_HINTS = (
    ("embedding", ("embed", "minilm", "bge-", "e5-", "gte-")),
    ("vision", ("llava", "vision", "-vl", "moondream", "minicpm-v", "bakllava")),
    ("coding", ("code", "coder", "codestral", "starcoder", "devstral")),
    ("reasoning", ("deepseek-r1", "qwq", "reason", "think", "magistral", "phi4-reasoning")),
)
_KIND_NAME_HINTS = (
    ("embedding", _NAME_HINTS[0][1]),
    ("image", ("z-image", "flux", "stable-diffusion", "sdxl", "sd3", "dall-e", "image-gen")),
    ("speech", ("whisper", "parakeet", "kokoro", "piper", "-tts", "tts-", "speech")),
)
KINDS = ("chat", "embedding", "image", "speech")


def kind_of(key: str, entry: ModelEntry | None) -> str:
    """The work a model does: ``chat``, ``embedding``, ``image`` (generation) or ``speech``.

    From the capabilities its node reports (Ollama's ``/api/show``), else words in its
    name; a model that names none of these is a chat model. A fallback never changes it.
    """
    capabilities = entry.capabilities if entry is not None else []
    if capabilities:
        if "embedding" in capabilities:
            return "embedding"
        if "completion" in capabilities:
            return "chat"
        if "image" in capabilities:
            return "image"
        if "audio" in capabilities or "speech" in capabilities:
            return "speech"
        return "chat"
    name = key.rsplit("/", 1)[-1]
    for kind, words in _KIND_NAME_HINTS:
        if any(word in name for word in words):
            return kind
    return "chat"


def category_of(key: str, entry: ModelEntry | None, overrides: dict[str, str]) -> str:
    """``general``, ``coding``, ``reasoning``, ``vision`` or ``embedding``: from YAML, else
    the model's capabilities, else words in its name (vision by name only when the node
    reports no capabilities: every gemma3 has the name, not every one sees)."""
    if key in overrides:
        return overrides[key]
    capabilities = entry.capabilities if entry is not None else []
    if "embedding" in capabilities:
        return "embedding"
    if "vision" in capabilities:
        return "vision"
    name = key.rsplit("/", 1)[-1]
    for category, words in _NAME_HINTS:
        if category == "vision" and capabilities:
            continue
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
    size. A substitute always does the same work (:func:`kind_of`: chat, embedding, image,
    speech), and a request with images only ever gets a vision model.
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
            for model, entry in node.models.items():
                known = entries.get(model)
                if known is None or (entry.capabilities and not known.capabilities):
                    entries[model] = entry  # a node that reports capabilities wins
            hot.update(node.loaded)
            hot.update(node.loading)
        overrides = self.config.categories
        needs_vision = request.images > 0
        kind = kind_of(key, entries.get(key))

        def usable(model: str) -> bool:
            entry = entries.get(model)
            if kind_of(model, entry) != kind:
                return False  # an image model cannot answer a chat, nor a chat model embed
            return not needs_vision or has_vision(model, entry)

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
