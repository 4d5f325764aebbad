"""Fallback policy: after a failure, try the best-ranked node not tried yet."""

from __future__ import annotations

from herd import FallbackPolicy, InferenceRequest, NodeView, hookimpl


class NextBestPolicy(FallbackPolicy):
    """Walks down the ranking, skipping nodes already tried and nodes now offline."""

    name = "next-best"

    def next_node(
        self, request: InferenceRequest, ranked: list[NodeView], tried: list[str]
    ) -> NodeView | None:
        for node in ranked:
            if node.name not in tried and node.status != "offline":
                return node
        return None


@hookimpl
def herd_register_fallback_policies() -> list[type[FallbackPolicy]]:
    return [NextBestPolicy]
