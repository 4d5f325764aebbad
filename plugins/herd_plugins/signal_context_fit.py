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
    reads = frozenset({"loaded", "loading"})  # what node_values reads
    request_reads = frozenset({"model_key", "prompt_tokens", "num_predict", "num_ctx"})

    class Config(Signal.Config, forbid_unknown_fields=True):
        weight: float = 1.5
        expected_output_tokens: int = 512
        node_default_num_ctx: int = 4096

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        # the last prepare's nodes and their scores, and the same by name (built if asked)
        self._prepared: tuple[Sequence[NodeView], list[float]] = ((), [])
        self._verdicts: dict[str, float] | None = {}
        # the last settle: values, tokens needed, num_ctx asked, scores, rejections
        self._settled: tuple = (None, 0, None, [], None)

    def needed_tokens(self, request: InferenceRequest) -> int:
        predict = request.num_predict
        output = predict if predict is not None and predict > 0 else None
        return request.prompt_tokens + (output or self.config.expected_output_tokens)

    def prepare(
        self, request: InferenceRequest, nodes: Sequence[NodeView]
    ) -> dict[str, str] | None:
        return self.settle(request, nodes, self.node_values(request, nodes))[1]

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> str:
        return request.model_key

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[int]:
        """The context each node runs (or is loading) the model with, 0 when neither."""
        key = request.model_key
        out = []
        for node in nodes:  # _context_of, inlined: the classic path runs it for every node
            loaded = node.loaded.get(key)
            context = loaded.context_length if loaded is not None else 0
            out.append(context or node.loading.get(key, 0))
        return out

    def settle(
        self, request: InferenceRequest, nodes: Sequence[NodeView], values: list[int]
    ) -> tuple[list[float], dict[str, str] | None]:
        needed = self.needed_tokens(request)
        asked = request.num_ctx
        last = self._settled
        if needed == last[1] and asked == last[2] and (values is last[0] or values == last[0]):
            self._prepared = (nodes, last[3])
            self._verdicts = None
            return last[3], last[4]  # the same cached values and tokens: the same verdicts
        scores, reasons = self._settle(nodes, values, needed, asked)
        self._settled = (values, needed, asked, scores, reasons)
        return scores, reasons

    def _settle(
        self, nodes: Sequence[NodeView], values: list[int], needed: int, asked: int | None
    ) -> tuple[list[float], dict[str, str] | None]:
        # few distinct contexts in a fleet: judge each once
        judged = {context: self._judge_context(context, asked, needed) for context in set(values)}
        scores = [judged[context][0] for context in values]
        self._prepared = (nodes, scores)
        self._verdicts = None
        if not any(verdict[0] >= 1.0 for verdict in judged.values()):
            return scores, None  # nothing fits better: no node is turned away for its context
        if not any(verdict[1] is not None for verdict in judged.values()):
            return scores, {}
        return scores, {
            node.name: judged[context][1]
            for node, context in zip(nodes, values, strict=True)
            if judged[context][1] is not None
        }

    def _judge(
        self, request: InferenceRequest, node: NodeView, needed: int
    ) -> tuple[float, str | None]:
        context = _context_of(node, request.model_key)
        return self._judge_context(context, request.num_ctx, needed)

    def _judge_context(
        self, context: int, asked: int | None, needed: int
    ) -> tuple[float, str | None]:
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


def _context_of(node: NodeView, key: str) -> int:
    loaded = node.loaded.get(key)
    return (loaded.context_length if loaded is not None else 0) or node.loading.get(key, 0)


@hookimpl
def herd_register_signals() -> list[type[Signal]]:
    return [ContextFitSignal]
