"""Context-fit signal: will the request fit the context the model runs with there?"""

from __future__ import annotations

from collections.abc import Sequence

from herd import InferenceRequest, NodeView, Signal, hookimpl

_FITS: tuple[float, str | None] = (1.0, None)


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
        self._verdicts: dict[str, tuple[float, str | None]] = {}

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
        verdicts: dict[str, tuple[float, str | None]] = {}
        for node in nodes:  # the common cases inline; the rest in _judge
            loaded = node.loaded.get(key)
            if loaded is None:
                if fresh_fits and key not in node.loading:
                    verdicts[node.name] = _FITS
                    continue
            elif needed <= loaded.context_length and (
                asked is None or asked <= loaded.context_length
            ):
                verdicts[node.name] = _FITS
                continue
            verdicts[node.name] = self._judge(request, node, needed)
        self._verdicts = verdicts
        if not any(score >= 1.0 for score, _ in verdicts.values()):
            return None  # nothing fits better: no node is turned away for its context
        return {name: reason for name, (_, reason) in verdicts.items() if reason is not None}

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
        verdict = self._verdicts.get(node.name)
        if verdict is None:  # a direct call, without prepare
            verdict = self._judge(request, node, self.needed_tokens(request))
        return verdict[0]

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        verdicts = self._verdicts
        return [verdicts[node.name][0] for node in nodes]


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [ContextFitSignal]
