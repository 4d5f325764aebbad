"""Context-fit signal: will the request fit the context the model runs with there?"""

from __future__ import annotations

from collections.abc import Sequence

from herd import InferenceRequest, NodeView, Signal, hookimpl


class ContextFitSignal(Signal):
    """Tokens needed = the request's estimated prompt tokens (text, history, images) plus
    its ``num_predict`` (else ``expected_output_tokens``).

    Loaded with a context that holds them 1.0; not loaded, and the context it would load
    with (the client's ``num_ctx``, else ``node_default_num_ctx``) holds them 1.0 too (the
    load itself is the thermal signal's business); loaded
    with a smaller context than the client's ``num_ctx`` (the node would reload it) 0.3;
    too small for the tokens, at most 0.5 (less the shorter it falls). A loaded copy that
    is too small, or would reload, is rejected (by ``prepare``) when another candidate
    fits.
    """

    name = "context-fit"

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 1.5
        expected_output_tokens: int = 512
        node_default_num_ctx: int = 4096

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        # the last prepare's nodes and their scores, and the same by name (built if asked)
        self._prepared: tuple[Sequence[NodeView], list[float]] = ((), [])
        self._verdicts: dict[str, float] | None = {}

    def needed_tokens(self, request: InferenceRequest) -> int:
        predict = request.num_predict
        output = predict if predict is not None and predict > 0 else None
        return request.prompt_tokens + (output or self.config.expected_output_tokens)

    def prepare(
        self, request: InferenceRequest, nodes: Sequence[NodeView]
    ) -> dict[str, str] | None:
        needed = self.needed_tokens(request)
        key, asked = request.model_key, request.num_ctx
        fresh_fits = (asked or self.config.node_default_num_ctx) >= needed
        scores: list[float] = []
        reasons: dict[str, str] = {}
        for node in nodes:  # the common cases inline; the rest in _judge
            loaded = node.loaded.get(key) if node.loaded else None
            if loaded is None:
                if fresh_fits and key not in node.loading:
                    scores.append(1.0)
                    continue
            elif needed <= loaded.context_length and (
                asked is None or asked <= loaded.context_length
            ):
                scores.append(1.0)
                continue
            score, reason = self._judge(request, node, needed)
            scores.append(score)
            if reason is not None:
                reasons[node.name] = reason
        self._prepared = (nodes, scores)
        self._verdicts = None
        if 1.0 not in scores and not any(score >= 1.0 for score in scores):
            return None  # nothing fits better: no node is turned away for its context
        return reasons

    def _judge(
        self, request: InferenceRequest, node: NodeView, needed: int
    ) -> tuple[float, str | None]:
        key = request.model_key
        asked = request.num_ctx
        loaded = node.loaded.get(key)
        context = (loaded.context_length if loaded is not None else 0) or node.loading.get(key, 0)
        if context:
            if asked is not None and asked > context:
                return 0.3, f"loaded context {context} < num_ctx {asked} (the model would reload)"
            if context < needed:
                reason = f"loaded context {context} < ~{needed} tokens needed"
                return 0.5 * context / needed, reason
            return 1.0, None
        context = asked or self.config.node_default_num_ctx
        if context >= needed:
            return 1.0, None  # it will load at a context that fits (thermal scores the load)
        return 0.5 * context / needed, None

    def score(self, request: InferenceRequest, node: NodeView) -> float:
        score = self._by_name().get(node.name)
        if score is None:  # a direct call, without prepare
            score = self._judge(request, node, self.needed_tokens(request))[0]
        return score

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        if nodes is self._prepared[0]:
            return self._prepared[1]
        known = self._by_name()
        return [known[node.name] for node in nodes]

    def _by_name(self) -> dict[str, float]:
        if self._verdicts is None:
            nodes, scores = self._prepared
            self._verdicts = {node.name: score for node, score in zip(nodes, scores, strict=True)}
        return self._verdicts


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [ContextFitSignal]
