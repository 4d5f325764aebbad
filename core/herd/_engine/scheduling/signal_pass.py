"""The signals' first pass over one decision's candidates: ``prepare``, or for a signal
that opts in to caching, its cached node values and ``settle``.

What a decision can leave out, by what the signals declare (``Signal.reads``,
``Signal.request_reads``; docs/extension-api.md, "Caching a signal's scores"): a signal
whose read fields changed on no candidate keeps every node's value (only the changed
nodes of those that read a changed field are asked again), and one that also says which
request fields its ``cache_key`` and ``settle`` read is not called at all when those are
the same as at the last decision for the model: its last scores and verdicts stand.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from operator import attrgetter
from typing import Any

from herd._engine.scheduling.score_cache import ValueCache
from herd.interfaces import InferenceRequest, NodeView, Signal
from herd.node_view import VIEW_FIELDS

__all__ = ["SignalPass"]

_MAX_KEYS = 512
_REQUEST_FIELDS = frozenset(InferenceRequest.__dataclass_fields__)


def overrides(signal: Signal, method: str) -> bool:
    """Whether the signal's class has its own ``method``."""
    return getattr(type(signal), method) is not getattr(Signal, method)


def _declared(signal: Signal, attribute: str, known: frozenset[str], what: str) -> Any:
    names = getattr(signal, attribute)
    if names is None:
        return None
    unknown = set(names) - known
    if unknown:
        raise ValueError(
            f"signal {signal.name}: {attribute} names no {what} field: "
            + ", ".join(sorted(unknown))
        )
    return frozenset(names)


def _asker(fields: frozenset[str] | None) -> Callable[[InferenceRequest], Any] | None:
    """The request's values of ``fields``, in one C call (None: not declared)."""
    if fields is None:
        return None
    if not fields:
        return lambda request: ()
    return attrgetter(*sorted(fields))


def _share(changes: tuple, reads: frozenset[str]) -> tuple:
    """The part of ``changes`` (see CandidateMemo.pick, with each changed candidate's
    fields, several of them) that touches a field in ``reads``: the rest leaves a
    signal's values as they were."""
    fields = changes[3]
    keep = [k for k, touched in enumerate(fields) if not reads.isdisjoint(touched)]
    if len(keep) == len(fields):
        return changes
    rows, nodes = changes[1], changes[2]
    return (changes[0], [rows[k] for k in keep], [nodes[k] for k in keep], None)


class SignalPass:
    """Runs every signal's ``prepare`` or cached ``settle`` for one decision.

    ``run`` returns the score columns of the cached signals, by signal position, and
    adds the signals' verdicts to the decision's rejections.
    """

    __slots__ = ("_entries", "_kept", "cached")

    def __init__(self, signals: list[Signal], cache: bool) -> None:
        # (position, signal, its value cache or None, whether it has a prepare, whether
        # its settle is the default one: the values are the scores unless one is None,
        # the view fields its values read and the getter of the request fields its
        # cache_key and settle read, each None when not declared)
        entries = []
        for index, signal in enumerate(signals):
            cached = cache and overrides(signal, "cache_key")
            if not cached and not overrides(signal, "prepare"):
                continue
            entries.append(
                (
                    index,
                    signal,
                    ValueCache(signal) if cached else None,
                    overrides(signal, "prepare"),
                    not overrides(signal, "settle"),
                    _declared(signal, "reads", VIEW_FIELDS, "NodeView") if cached else None,
                    _asker(_declared(signal, "request_reads", _REQUEST_FIELDS, "request"))
                    if cached
                    else None,
                )
            )
        self._entries = entries
        self.cached = any(entry[2] is not None for entry in entries)
        # by (capability, model): each signal's last answer, where it may stand next time:
        # [its request fields, its entry's stamp, the entry, scores, verdicts, revisions]
        self._kept: dict[Hashable, list[list | None]] = {}

    def run(
        self,
        request: InferenceRequest,
        candidates: list[NodeView],
        names: list[str],
        revisions: list[int] | None,
        changes: tuple | None,
        memo_key: Hashable | None,
        rejections: dict[str, str],
    ) -> dict[int, list[Any]]:
        """``memo_key`` None: every signal asked the usual way (no cache for this
        decision). ``changes``: see CandidateMemo.pick (None: unknown)."""
        settled: dict[int, list[Any]] = {}
        kept = None
        before = None
        touched = None  # every field changed on a candidate, when known and any
        unchanged = changes
        if memo_key is not None:
            kept = self._kept.get(memo_key)
            if kept is None:
                if len(self._kept) >= _MAX_KEYS:
                    self._kept.clear()
                kept = self._kept[memo_key] = [None] * (self._entries[-1][0] + 1)
            if changes is not None:
                before = changes[0]
                fields = changes[3]
                if changes[1] and fields is not None:
                    touched = fields[0] if len(fields) == 1 else set().union(*fields)
                    unchanged = (before, (), (), ())
        for index, signal, cache, prepares, plain_settle, reads, asks in self._entries:
            if cache is None or memo_key is None:
                if not prepares:
                    continue
                verdicts = signal.prepare(request, candidates)
                if verdicts:
                    for name, reason in verdicts.items():
                        rejections.setdefault(name, f"{signal.name}: {reason}")
                continue
            share = changes  # what changed, as far as this signal reads
            if touched is not None and reads is not None:
                if reads.isdisjoint(touched):
                    share = unchanged
                elif len(changes[1]) > 1:
                    share = _share(changes, reads)
            last = kept[index]  # (a list only for a signal that declares request_reads)
            if (
                last is not None
                and last[5] is before
                and not share[1]
                and signal._invalidated_at <= last[1]
                and last[0] == asks(request)
            ):  # nothing it reads moved: its last answer stands
                entry = last[2]
                if entry.revisions is before:  # (still as of then: keep it so)
                    entry.revisions = revisions
                last[5] = revisions
                settled[index] = last[3]
                if last[4]:
                    for name, reason in last[4].items():
                        rejections.setdefault(name, f"{signal.name}: {reason}")
                continue
            key = signal.cache_key(request, candidates)
            if key is None:
                kept[index] = None
                if not prepares:
                    continue
                verdicts = signal.prepare(request, candidates)
            else:
                values = cache.values(key, request, candidates, names, revisions, share)
                entry = cache.entry
                if plain_settle and entry.clean:
                    scores, verdicts = values, None  # what Signal.settle returns
                else:
                    scores, verdicts = signal.settle(request, candidates, values)
                settled[index] = scores
                kept[index] = (
                    [asks(request), entry.stamp, entry, scores, verdicts, revisions]
                    if asks is not None and entry.clean
                    else None
                )
            if verdicts:
                for name, reason in verdicts.items():
                    rejections.setdefault(name, f"{signal.name}: {reason}")
        return settled
