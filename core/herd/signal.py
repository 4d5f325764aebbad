"""The scoring signal plugins implement (re-exported by :mod:`herd.interfaces` and
:mod:`herd`), with what its optional cache asks of it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from itertools import repeat
from operator import is_
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from herd.node_view import NodeView, next_revision

if TYPE_CHECKING:
    from herd.interfaces import InferenceRequest
    from herd.trace import RequestTrace

__all__ = ["Signal"]


class Signal(ABC):
    """One scoring signal: rejects nodes that cannot serve, scores the rest in [0, 1].

    Pure and synchronous over a :class:`NodeView`: no I/O.

    Example:
        >>> class PreferNamedSignal(Signal):
        ...     name = "prefer-named"
        ...     def score(self, request, node):
        ...         return 1.0 if node.name == "gpu-box" else 0.0
    """

    name: ClassVar[str]

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        """Options under ``routing.signals.<name>``."""

        weight: float = 1.0

    def __init__(self, config: Any) -> None:
        self.config = config
        self.weight = float(getattr(config, "weight", 1.0))

    def prepare(
        self, request: InferenceRequest, nodes: Sequence[NodeView]
    ) -> Mapping[str, str] | None:
        """See every candidate once, before ``reject`` and ``scores`` (optional).

        For signals that judge a node against the others (e.g. "reject only when another
        node fits"). Called synchronously right before the per-node calls of one decision,
        so state kept here is valid for that decision only.

        Returns:
            None, or ``{node name: reason}`` for nodes to reject (cheaper than ``reject``
            when the verdicts come out of this pass anyway).
        """
        return None

    def reject(self, request: InferenceRequest, node: NodeView) -> str | None:
        """A reason this node cannot serve the request, or None."""
        return None

    @abstractmethod
    def score(self, request: InferenceRequest, node: NodeView) -> float:
        """How good this node is for the request, from 0 (worst) to 1 (best)."""

    def scores(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[float]:
        """Score several nodes at once: what the router calls, ``score`` on each by default.

        Override only for speed, when scoring one node costs little next to a call.
        """
        score = self.score
        return [score(request, node) for node in nodes]

    def observe(self, trace: RequestTrace) -> None:  # noqa: B027
        """Learn from a finished request (latency, failures, where a session went).

        Optional; called on the event loop for every trace, so it must be cheap.
        """

    # Caching (optional): a signal that says nothing is called on every decision, as above.
    # One that returns a key from cache_key is not: the ranker keeps each node's value
    # from node_values and asks again only for nodes whose view changed (NodeView.revision)
    # or that invalidate() named, then settle turns the values into this decision's scores.
    #: The :class:`NodeView` fields :meth:`node_values` reads (names from
    #: :data:`herd.node_view.VIEW_FIELDS`), for a cached signal: a node's value is asked
    #: again only when one of them changed (or :meth:`invalidate` named the node), so a
    #: request starting on a node does not re-ask a signal that reads only its memory.
    #: None (the default): any change to the node's view counts. It must name every
    #: field read, through ``NodeView``'s methods too (``slots_for`` reads
    #: ``num_parallel``, ``learned_parallel`` and ``assumed_parallel``); ``check_signal``
    #: tests it.
    reads: ClassVar[frozenset[str] | None] = None
    #: The :class:`InferenceRequest` fields (``model_key``, ``prompt_tokens``, ...) a
    #: cached signal's ``cache_key`` and ``settle`` read. Declaring them promises that
    #: both depend on nothing else but the values, the candidates' fields in
    #: :attr:`reads` (or any, when that is None) and state :meth:`invalidate` guards: no
    #: clock, no state learned without ``invalidate``. A decision for the same model over
    #: the same candidates then reuses the signal's last scores and verdicts, without
    #: calling it, when none of those request fields differ from the last decision's, no
    #: candidate changed a field it reads, nothing was invalidated and no value was None.
    #: None (the default): ``cache_key`` and ``settle`` are called every decision.
    request_reads: ClassVar[frozenset[str] | None] = None
    _invalidated_at: int = 0  # the latest invalidate() (0: never)
    _invalidated_all: int = 0  # the latest invalidate() of every node

    def cache_key(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> Hashable:
        """Opt in to caching for this decision: a key for everything besides one node's
        view that the node's value depends on (e.g. ``request.model_key``), or None (the
        default) to be called the usual way: ``prepare``, ``reject``, ``scores``.

        Called once per decision, right before ``node_values`` (if any node needs a value)
        and ``settle``, which may use what it worked out. When a key is returned,
        ``prepare`` and ``scores`` are not called; ``reject`` is.
        Learned state (from ``observe``) belongs in the key only if it changes seldom;
        otherwise call :meth:`invalidate` when it changes. The clock must not be read by
        ``node_values``: a value that depends on it is None (see ``settle``).
        """
        return None

    def node_values(self, request: InferenceRequest, nodes: Sequence[NodeView]) -> list[Any]:
        """Each node's value for the key: a function of the key, the node's view and the
        state :meth:`invalidate` guards, nothing else (default: :meth:`scores`, right for
        a signal without ``prepare``). None marks a value that must not be kept (e.g. it
        depends on the clock): ``settle`` gets None for that node every time."""
        return self.scores(request, nodes)

    def settle(
        self, request: InferenceRequest, nodes: Sequence[NodeView], values: list[Any]
    ) -> tuple[list[float], Mapping[str, str] | None]:
        """This decision's scores from the nodes' values (cached or fresh; do not change
        the list), and ``prepare``'s verdicts: ``{node name: reason}`` or None. Where the
        nodes are judged against each other (the best of them, the total load). Default:
        the values are the scores, a None one asked of :meth:`scores` (in one call).

        When no value moved since the last decision for the key, ``values`` is the same
        list object as then: ``values is`` the list last seen says the judgement stands."""
        if not any(map(is_, values, repeat(None))):  # (identity: cheaper than None in)
            return values, None
        moving = [index for index, value in enumerate(values) if value is None]
        scores = list(values)
        for index, score in zip(
            moving, self.scores(request, [nodes[i] for i in moving]), strict=True
        ):
            scores[index] = score
        return scores, None

    def invalidate(self, node: str | None = None) -> None:
        """Say that learned state behind ``node``'s value (every node's when None)
        changed: the ranker asks :meth:`node_values` for it again."""
        stamp = next_revision()
        self._invalidated_at = stamp
        if node is None:
            self._invalidated_all = stamp
            return
        if "_invalidated" not in self.__dict__:
            self._invalidated: dict[str, int] = {}
        invalidated = self._invalidated
        invalidated.pop(node, None)  # kept in stamp order: the ranker reads the newest only
        invalidated[node] = stamp
