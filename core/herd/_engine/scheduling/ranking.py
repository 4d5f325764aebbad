"""Ranking the nodes for one request: candidates -> reject -> score -> order.

Pure and synchronous over the fleet's node views, so the scheduler, ``/fleet/explain``
and the benchmarks share it. Every signal scores on one scale, 0 (worst) to 1 (best);
a node's total is the weighted mean of its signals' scores, so it is in [0, 1] too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter

from herd._engine.scheduling.rank_memo import CandidateMemo
from herd._engine.scheduling.signal_pass import SignalPass, overrides
from herd._engine.scheduling.totals_memo import TotalsMemo, row_weigher
from herd.interfaces import InferenceRequest, NodeView, Signal

__all__ = ["Decision", "Ranker"]

_SERVING_STATES = ("online", "degraded")
_status = attrgetter("status")
_name = attrgetter("name")
_revision = attrgetter("revision")
# the view fields Ranker.candidates reads (a change to any other leaves a view's verdict),
# and the name the verdicts are kept by
_CANDIDATE_READS = frozenset(
    {"status", "draining", "capabilities", "models", "loaded", "primary_capabilities"}
    | {"service_models", "name"}
)
# the cache is skipped for a decision when its candidates number fewer than this many,
# plus so many per candidate changed since the last decision for the model: measured,
# asking the signals afresh costs about one unit a node, the cache's bookkeeping about
# 16 units a decision and 6 a changed node (bench_scheduler.py)
_CACHE_FIXED_ROWS = 16
_CACHE_ROWS_PER_CHANGE = 6


class Decision:
    """A ranking of the nodes for one request, with the reasons behind it.

    Attributes:
        ranked: Nodes that can serve, best first; healthy nodes before degraded ones.
        totals: Each ranked node's weighted mean score, in [0, 1].
        rejections: Why each other node cannot serve, by node name.
    """

    __slots__ = (
        "_columns",
        "_names",
        "_nodes",
        "_scores",
        "_sums",
        "_totals",
        "ranked",
        "rejections",
    )

    def __init__(
        self,
        ranked: list[NodeView],
        rejections: dict[str, str],
        signal_names: list[str],
        nodes: list[str],
        sums: list[float],
        columns: list[list[float]],
    ) -> None:
        self.ranked = ranked
        self.rejections = rejections
        self._names = signal_names
        self._nodes = nodes
        self._sums = sums
        self._columns = columns
        self._totals: dict[str, float] | None = None
        self._scores: dict[str, dict[str, float]] | None = None

    @property
    def totals(self) -> dict[str, float]:
        """Each ranked node's weighted mean score, in [0, 1] (built when first read)."""
        if self._totals is None:
            self._totals = dict(zip(self._nodes, self._sums, strict=True))
        return self._totals

    def total_of(self, node: str, default: float = 0.0) -> float:
        """One node's total, without building :attr:`totals` (a request needs only its
        serving node's, for ``X-Herd-Score``)."""
        if self._totals is not None:
            return self._totals.get(node, default)
        try:
            return self._sums[self._nodes.index(node)]
        except ValueError:
            return default

    @property
    def scores(self) -> dict[str, dict[str, float]]:
        """Each ranked node's score per signal, in [0, 1] (built when first read)."""
        if self._scores is None:
            # (no strict= checks: the totals were weighed from these same columns, which
            # checked their lengths; each strict= builds a keyword dict, per request)
            names = self._names
            rows = zip(*self._columns) if self._columns else [()] * len(self._nodes)  # noqa: B905
            self._scores = {
                node: dict(zip(names, row))  # noqa: B905
                for node, row in zip(self._nodes, rows)  # noqa: B905
            }
        return self._scores


def _nothing_ranked(rejections: dict[str, str]) -> Decision:
    return Decision([], rejections, [], [], [], [])


def _all_online(views: list[NodeView]) -> bool:
    return list(map(_status, views)).count("online") == len(views)


def _weigher(shares: list[float]) -> Callable[..., list[float]]:
    """A function of the signals' score columns giving each row's weighted total.

    Compiled for this many signals: one comprehension computing ``c0 * s0 + c1 * s1 + ...``
    per row, left to right in signal order (what ``sum(map(mul, row, shares))`` adds up on
    Python 3.11), without the intermediate lists and tuples a generic loop builds: about
    half the cost of the decision's arithmetic. Only integers go into the source.
    """
    count = len(shares)
    columns = ", ".join(f"c{i}" for i in range(count))
    row = columns + ("," if count == 1 else "")  # a 1-tuple target needs its comma
    terms = " + ".join(f"c{i} * s{i}" for i in range(count))
    source = f"lambda {columns}: [{terms} for {row} in zip({columns}, strict=True)]"
    return eval(source, {f"s{i}": share for i, share in enumerate(shares)})


class Ranker:
    """Runs the signals over the candidate nodes of a request.

    Signals run column by column: each signal's ``prepare`` (only if it has one), then its
    ``reject`` on each node (only if it has one), then one ``scores`` call over the nodes
    left. A node's total is ``sum(weight * score) / sum(weights)``.

    A signal that opts in to caching (``Signal.cache_key``) takes ``prepare``'s place with
    ``settle`` over its nodes' values, cached per node view revision (see
    :class:`~herd._engine.scheduling.score_cache.ValueCache`), and scores nothing itself.
    """

    def __init__(self, signals: list[Signal], cache: bool = True) -> None:
        """``cache=False``: every signal is asked every time, as if none opted in (the
        reference the cache is tested against)."""
        self.signals = signals
        self.weight_sum = sum(s.weight for s in signals) or 1.0
        self._first_pass = SignalPass(signals, cache)
        self._cached = self._first_pass.cached
        self._rejecters = [(s.name, s.reject) for s in signals if overrides(s, "reject")]
        self._preparers = [s for s in signals if overrides(s, "prepare")]
        self._names = [s.name for s in signals]
        self._shares = [s.weight / self.weight_sum for s in signals]
        self._weigh = _weigher(self._shares) if signals else None
        # with a cached signal, decisions pick up where the last one for the model left off
        self._picks = CandidateMemo(self.candidates, _CANDIDATE_READS) if self._cached else None
        self._seen: dict[tuple[str, str], list[int]] = {}  # small fleets: revisions, by model
        # by (capability, model): the last candidates, order, ranking, all of them online,
        # candidate revisions
        self._last_ranked: dict[tuple[str, str], list] = {}
        self._sums = (
            TotalsMemo(self._weigh, row_weigher(self._shares))
            if self._cached and self._weigh is not None
            else None
        )

    def candidates(
        self,
        request: InferenceRequest,
        views: Iterable[NodeView],
        capability: str,
        rejections: dict[str, str],
    ) -> list[NodeView]:
        """Nodes that are up, not draining, able to do ``capability`` and have the model."""
        key = request.model_key
        out: list[NodeView] = []
        for view in views:
            status = view.status
            if status not in _SERVING_STATES:
                rejections[view.name] = f"node {status}"
            elif view.draining:
                rejections[view.name] = "node draining"
            elif capability not in view.capabilities:
                rejections[view.name] = f"no {capability} capability"
            elif (key in view.models or key in view.loaded) and (
                view.primary_capabilities is None or capability in view.primary_capabilities
            ):
                out.append(view)  # the common case, inlined: NodeView.serves's own-backend test
            elif view.serves(capability, key):
                out.append(view)
            else:
                rejections[view.name] = "model not on this node"
        return out

    def _changed(self, request: InferenceRequest, views: list[NodeView], capability: str) -> bool:
        """Whether any view changed since the last decision for this model."""
        revisions = list(map(_revision, views))
        key = (capability, request.model_key)
        if self._seen.get(key) == revisions:
            return False
        if len(self._seen) >= 512:
            self._seen.clear()
        self._seen[key] = revisions
        return True

    def _ranked(
        self,
        key: tuple[str, str],
        candidates: list[NodeView],
        order: list[int],
        changes: tuple | None,
        revisions: list[int] | None,
    ) -> list[NodeView]:
        """The candidates in ``order``, degraded ones last. With ``changes`` (the same
        candidates as the last decision for the model, ``changes[2]`` those that changed
        since), the last decision's list is copied when neither it nor whether every
        candidate is online can have moved."""
        last = self._last_ranked.get(key) if changes is not None else None
        if (
            last is not None
            and last[0] is candidates
            and last[4] is changes[0]  # no decision for the model in between
            and last[3]
            and (not changes[2] or _all_online(changes[2]))
        ):
            if last[1] is not order:
                move = self._sums.move if self._sums is not None else None
                if move is not None and move[0] is last[1] and move[1] is order:
                    ranked = list(last[2])  # one row moved: the node moves the same way
                    ranked.insert(move[3], ranked.pop(move[2]))
                else:
                    ranked = list(map(candidates.__getitem__, order))
                last[1] = order
                last[2] = ranked
            last[4] = revisions
            return list(last[2])  # a copy: the caller may change its own
        ranked = list(map(candidates.__getitem__, order))
        statuses = list(map(_status, candidates))
        online = statuses.count("online") == len(statuses)
        if not online:  # degraded: last resort
            ranked = [v for v in ranked if v.status == "online"] + [
                v for v in ranked if v.status != "online"
            ]
        if revisions is not None:  # (the candidates' bookkeeping ran: a next time may use it)
            if len(self._last_ranked) >= 512:
                self._last_ranked.clear()
            self._last_ranked[key] = [candidates, order, ranked, online, revisions]
            return list(ranked)
        return ranked

    def rank(
        self, request: InferenceRequest, views: Iterable[NodeView], capability: str = "text"
    ) -> Decision:
        """Score every node that can serve the request, best first.

        Ties keep configuration order, so an idle fleet fills its first node's free slots
        only until the queue-depth signal tips the balance.
        """
        rejections: dict[str, str] = {}
        if self._picks is None:
            candidates = self.candidates(request, views, capability, rejections)
            return self._afresh(request, candidates, rejections, capability, None)
        views = views if isinstance(views, list) else list(views)
        if len(views) < _CACHE_FIXED_ROWS + _CACHE_ROWS_PER_CHANGE and self._changed(
            request, views, capability
        ):  # a small fleet that changed: even the candidates' bookkeeping costs more
            candidates = self.candidates(request, views, capability, rejections)
            return self._afresh(request, candidates, rejections, capability, None)
        picked = self._picks.pick(request, views, capability)
        candidates, names, revisions, rejected, changes = picked
        rejections.update(rejected)
        if (
            changes is not None
            and changes[1]
            and len(candidates) < _CACHE_FIXED_ROWS + _CACHE_ROWS_PER_CHANGE * len(changes[1])
        ):  # many nodes changed in a small fleet: asking every signal afresh costs less
            # than the cache's bookkeeping (the decision is the same either way)
            return self._afresh(request, candidates, rejections, capability, revisions)
        if not candidates:
            return _nothing_ranked(rejections)
        before_signals = len(rejections)  # (the views that are no candidates)
        memo_key = (capability, request.model_key)
        settled = self._first_pass.run(
            request, candidates, names, revisions, changes, memo_key, rejections
        )
        if self._rejecters:
            self._reject(request, candidates, rejections)
        kept = None
        if len(rejections) > before_signals:  # a signal turned a candidate away
            kept = [i for i, view in enumerate(candidates) if view.name not in rejections]
            if not kept:
                return _nothing_ranked(rejections)
            if len(kept) == len(candidates):
                kept = None
            else:
                candidates = [candidates[i] for i in kept]
                names = [names[i] for i in kept]
        if kept is None and len(settled) == len(self.signals):
            columns = list(settled.values())  # (filled in signal order)
        else:
            columns = []
            for index, signal in enumerate(self.signals):
                column = settled.get(index)
                if column is None:
                    column = signal.scores(request, candidates)
                elif kept is not None:
                    column = [column[i] for i in kept]
                columns.append(column)
        if self._sums is not None:
            # (the candidates that changed, when the columns hold every candidate's row)
            hint = changes[1] if changes is not None and kept is None else ()
            totals, order = self._sums.totals(memo_key, names, columns, hint)
        else:
            totals = self._weigh(*columns) if self._weigh is not None else [0] * len(candidates)
            order = sorted(range(len(candidates)), key=totals.__getitem__, reverse=True)
        ranked = self._ranked(memo_key, candidates, order, changes, revisions)
        return Decision(ranked, rejections, self._names, names, totals, columns)

    def _afresh(
        self,
        request: InferenceRequest,
        candidates: list[NodeView],
        rejections: dict[str, str],
        capability: str,
        revisions: list[int] | None,
    ) -> Decision:
        """The decision with every signal asked the usual way (no cached values): each
        ``prepare``, each ``reject``, then one ``scores`` column per signal.

        ``revisions``: the candidates' revisions, when the cache's bookkeeping ran for them
        (the next decision for the model may then start from this one).
        """
        if not candidates:
            return _nothing_ranked(rejections)
        before_signals = len(rejections)  # (the views that are no candidates)
        for signal in self._preparers:
            verdicts = signal.prepare(request, candidates)
            if verdicts:
                for name, reason in verdicts.items():
                    rejections.setdefault(name, f"{signal.name}: {reason}")
        if self._rejecters:
            self._reject(request, candidates, rejections)
        if len(rejections) > before_signals:  # a signal turned a candidate away
            candidates = [view for view in candidates if view.name not in rejections]
            if not candidates:
                return _nothing_ranked(rejections)
        columns = []
        for signal in self.signals:
            columns.append(signal.scores(request, candidates))
        totals = self._weigh(*columns) if self._weigh is not None else [0] * len(candidates)
        # sorted() is stable, reverse included: ties keep configuration order
        order = sorted(range(len(candidates)), key=totals.__getitem__, reverse=True)
        ranked = self._ranked((capability, request.model_key), candidates, order, None, revisions)
        names = list(map(_name, candidates))
        return Decision(ranked, rejections, self._names, names, totals, columns)

    def _reject(
        self, request: InferenceRequest, candidates: list[NodeView], rejections: dict[str, str]
    ) -> None:
        """Each signal's ``reject`` on each candidate not turned away yet (the first reason
        given is kept)."""
        for view in candidates:
            if view.name in rejections:
                continue
            for signal_name, reject in self._rejecters:
                reason = reject(request, view)
                if reason is not None:
                    rejections[view.name] = f"{signal_name}: {reason}"
                    break
