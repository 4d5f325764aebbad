"""Per-node values of the signals that opt in to caching (``Signal.cache_key``).

A value is kept with the revision of the node's view it was computed from; a decision asks
the signal again only for nodes whose view changed since (``NodeView.revision``; only in
a field the signal reads, when it says which: ``Signal.reads``), that the signal
invalidated (``Signal.invalidate``), or that were not candidates last time. When
nothing changed, the last decision's list of values is reused as it is.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from itertools import compress, repeat
from math import copysign
from operator import is_, ne
from typing import Any

from herd.interfaces import InferenceRequest, NodeView, Signal
from herd.node_view import next_revision

__all__ = ["ValueCache"]

_MAX_KEYS = 512  # keys (models, mostly) kept per signal before the cache starts over


class _Entry:
    """The values of one signal for one key, as of the last decision that used it."""

    __slots__ = ("clean", "names", "revisions", "stamp", "values")

    def __init__(
        self, names: list[str], revisions: list[int], values: list[Any], stamp: int
    ) -> None:
        self.names = names
        self.revisions = revisions
        self.values = values
        self.stamp = stamp  # drawn before the values were computed: later changes are newer
        self.clean = not any(map(is_, values, repeat(None)))  # no value to ask every time


class ValueCache:
    """One signal's cached node values, by the signal's cache key."""

    __slots__ = ("_entries", "_where", "entry", "signal")

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        # the entry of the values last returned: its clean says they hold no None, its
        # stamp that no invalidate() since then is missed
        self.entry: _Entry | None = None
        self._entries: dict[Hashable, _Entry] = {}
        # a list of node names and each one's position in it (the last one asked about)
        self._where: tuple[list[str] | None, dict[str, int]] = (None, {})

    def values(
        self,
        key: Hashable,
        request: InferenceRequest,
        nodes: Sequence[NodeView],
        names: list[str],
        revisions: list[int],
        changes: tuple[list[int], Any] | None = None,
    ) -> list[Any]:
        """The signal's value for each of ``nodes`` (whose names and revisions are given).

        ``changes``: ``(revisions, indexes, nodes, fields)``: which nodes changed
        (indexes in order, and the nodes) since the decision that saw ``revisions`` (the
        same nodes), worked out once for every decision and narrowed to those where a
        field the signal reads changed (``Signal.reads``)."""
        signal = self.signal
        entries = self._entries
        entry = entries.get(key)
        if entry is None or signal._invalidated_all > entry.stamp:
            return self._compute_all(key, request, nodes, names, revisions)
        invalidated = signal._invalidated_at > entry.stamp
        if changes is not None and entry.revisions is changes[0]:
            if not invalidated:
                if not changes[1]:  # nothing changed, or nothing the signal reads
                    entry.revisions = revisions
                    self.entry = entry
                    return entry.values  # the common case when idle
                stamp = next_revision()
                rows = changes[1]
                fresh = signal.node_values(request, changes[2])
                values = entry.values
                if len(rows) == 1:  # one node (a request started or finished there)
                    return self._one(entry, names, revisions, rows[0], fresh[0], stamp)
                values = _patched(values, rows, fresh)
                return self._keep(entry, names, revisions, values, fresh, stamp)
            stale = set(changes[1])
            base = entry.values
        elif entry.names == names:
            if entry.revisions == revisions and not invalidated:
                self.entry = entry
                return entry.values
            stale = set(compress(range(len(names)), map(ne, revisions, entry.revisions)))
            base = entry.values
        else:  # the candidates changed: keep what is known by name
            base = None
            pairs = zip(entry.revisions, entry.values, strict=True)
            known = dict(zip(entry.names, pairs, strict=True))
            stale = set()
            values = []
            for index, (name, revision) in enumerate(zip(names, revisions, strict=True)):
                old = known.get(name)
                if old is None or old[0] != revision:
                    stale.add(index)
                    values.append(None)
                else:
                    values.append(old[1])
        if invalidated:
            since = entry.stamp
            where = self._where[1] if self._where[0] is names else self._positions(names)
            for name, stamp in reversed(signal._invalidated.items()):  # newest first
                if stamp <= since:
                    break
                index = where.get(name)
                if index is not None:
                    stale.add(index)
        stamp = next_revision()
        order = sorted(stale)
        fresh = signal.node_values(request, [nodes[index] for index in order]) if order else ()
        if base is not None:  # the same candidates: the entry's list, where a value moved
            if len(order) == 1:
                return self._one(entry, names, revisions, order[0], fresh[0], stamp)
            values = _patched(base, order, fresh)
            return self._keep(entry, names, revisions, values, fresh, stamp)
        for index, value in zip(order, fresh, strict=True):
            values[index] = value
        entries[key] = entry = _Entry(names, revisions, values, stamp)
        self.entry = entry
        return values

    def _one(
        self,
        entry: _Entry,
        names: list[str],
        revisions: list[int],
        row: int,
        value: Any,
        stamp: int,
    ) -> list[Any]:
        """The entry, now as of ``revisions``, with one node's fresh ``value`` at ``row``
        (its own list when that value did not move: see :func:`_same`)."""
        values = entry.values
        old = values[row]
        if value is not old and (value != old or not _same(value, old)):
            values = list(values)
            values[row] = value
            entry.values = values
            if value is None:
                entry.clean = False
            elif not entry.clean:
                entry.clean = not any(map(is_, values, repeat(None)))
        entry.names, entry.revisions, entry.stamp = names, revisions, stamp
        self.entry = entry
        return values

    def _keep(
        self,
        entry: _Entry,
        names: list[str],
        revisions: list[int],
        values: list,
        fresh: Sequence[Any],
        stamp: int,
    ) -> list[Any]:
        """The entry, now as of ``revisions``, with ``values`` (its own list when none
        moved)."""
        if values is not entry.values:
            entry.values = values
            if entry.clean:  # only a fresh value can be None
                entry.clean = not any(map(is_, fresh, repeat(None)))
            else:
                entry.clean = not any(map(is_, values, repeat(None)))
        entry.names, entry.revisions, entry.stamp = names, revisions, stamp
        self.entry = entry
        return values

    def _positions(self, names: list[str]) -> dict[str, int]:
        """Each name's position in ``names`` (the first, for a name listed twice), kept
        for the next decision over the same list (the candidates' names, most often)."""
        where: dict[str, int] = {}
        for index, name in enumerate(names):
            where.setdefault(name, index)
        self._where = (names, where)
        return where

    def _compute_all(
        self,
        key: Hashable,
        request: InferenceRequest,
        nodes: Sequence[NodeView],
        names: list[str],
        revisions: list[int],
    ) -> list[Any]:
        entries = self._entries
        if len(entries) >= _MAX_KEYS:
            entries.clear()
        stamp = next_revision()
        values = list(self.signal.node_values(request, nodes))
        entries[key] = entry = _Entry(names, revisions, values, stamp)
        self.entry = entry
        return values


def _same(new: Any, old: Any) -> bool:
    """Whether a fresh value is the cached one for every purpose, repr included: the
    same object, or an equal scalar of the same type (a float's sign too: 0.0 and -0.0
    are equal but print apart), or a tuple of such. Anything else counts as moved."""
    if new is old:
        return True
    kind = new.__class__
    if kind is not old.__class__:
        return False
    if kind is float:
        return new == old and (new != 0.0 or copysign(1.0, new) == copysign(1.0, old))
    if kind is int or kind is str or kind is bool:
        return new == old
    if kind is tuple:
        return len(new) == len(old) and all(map(_same, new, old))
    return False


def _patched(values: list[Any], indexes: Sequence[int], fresh: Sequence[Any]) -> list[Any]:
    """``values`` with ``fresh`` at ``indexes``: a copy, or ``values`` itself when every
    fresh value is the same as the one it replaces (see :func:`_same`), so that a signal's
    ``settle`` and the ranker see at once, by identity, that nothing moved."""
    patched = values
    for index, value in zip(indexes, fresh, strict=True):
        prior = values[index]
        if value is prior or (
            value.__class__ is float
            and prior.__class__ is float
            and value == prior
            and value != 0.0  # (the common case inlined: a call costs more than the test)
        ):
            continue
        if not _same(value, prior):
            if patched is values:
                patched = list(values)
            patched[index] = value
    return patched
