"""The wait-time signal's bookkeeping over rows: which of its cached node values moved
since its last ``settle``, and the shortest waits after a few rows changed."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress
from operator import not_

from herd import NodeView

__all__ = ["AskedRows", "bests_after", "bests_of"]

_MOST_ASKED = 4  # more nodes asked about between two settles: every row is compared


class AskedRows:
    """The nodes ``node_values`` was asked about since the last ``settle``: where the
    values most likely moved (the rest are the cached ones). A guess, checked."""

    __slots__ = ("_asked", "_nodes", "_rows")

    def __init__(self) -> None:
        self._asked: list[NodeView] | None = []  # None: too many to be worth it
        self._nodes: Sequence[NodeView] | None = None  # the last candidates asked about
        self._rows: dict[int, int] = {}  # their positions, by id (the list holds them)

    def add(self, nodes: Sequence[NodeView]) -> None:
        asked = self._asked
        if asked is not None:
            if len(asked) + len(nodes) <= _MOST_ASKED:
                asked.extend(nodes)
            else:
                self._asked = None

    def clear(self) -> None:
        self._asked = []

    def changed(self, nodes: Sequence[NodeView], values: list, last: list) -> list[int] | None:
        """The rows where ``values`` holds another object than ``last`` (as long), or None
        when the asked nodes do not say (compare every row). Forgets the asked nodes.

        ``last`` with the asked nodes' rows taken from ``values`` is compared with
        ``values`` in one list compare: equal, every other row holds the same object or
        an equal one. An equal value tuple counts as the same: its floats are equal and
        its flags the same bools, and the signal's scores and shortest waits are
        functions of those, so they come out the same."""
        asked = self._asked
        self._asked = []
        if not asked:
            return None
        if self._nodes is not nodes:
            self._nodes = nodes
            self._rows = {id(node): index for index, node in enumerate(nodes)}
        where = self._rows
        patched = list(last)
        if len(asked) == 1:  # the common case, without a comprehension's setup
            row = where.get(id(asked[0]))
            if row is None:
                return None
            patched[row] = values[row]
            if patched != values:
                return None
            return [row] if values[row] is not last[row] else []
        rows = sorted({where[id(node)] for node in asked if id(node) in where})
        for index in rows:
            patched[index] = values[index]
        if patched != values:
            return None
        return [index for index in rows if values[index] is not last[index]]


def bests_of(waits: list, hot: list, hot_online: list) -> tuple[float | None, float | None]:
    return (
        min(compress(waits, hot_online), default=None),
        min(compress(waits, map(not_, hot)), default=None),
    )


def bests_after(
    before: tuple[list, ...],
    best_hot: float | None,
    best_cold: float | None,
    after: tuple[list, list, list],
    changed: list[int],
) -> tuple[float | None, float | None] | None:
    """The shortest waits (hot and online, cold) after a few rows changed, from the ones
    before; None when a changed row may have held one (it must be looked for again)."""
    _, old_waits, old_hot, old_hot_online = before
    waits, hot, hot_online = after
    for index in changed:  # a row that left may have been the shortest
        wait = old_waits[index]
        if old_hot_online[index] and best_hot is not None and not wait > best_hot:
            return None
        if not old_hot[index] and best_cold is not None and not wait > best_cold:
            return None
    for index in changed:
        wait = waits[index]
        if wait != wait:
            return None  # NaN: not comparable
        if hot_online[index] and (best_hot is None or wait < best_hot):
            best_hot = wait
        if not hot[index] and (best_cold is None or wait < best_cold):
            best_cold = wait
    return best_hot, best_cold
