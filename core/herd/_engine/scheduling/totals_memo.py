"""What one decision can take over from the last one for the same model: the weighed
totals and their order (the candidates are in rank_memo.py).

A pure function of the score columns: only rows that changed are weighed again; the
rest is the last decision's, value for value.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from itertools import compress
from operator import is_not, itemgetter, ne
from typing import Any

__all__ = ["TotalsMemo", "row_weigher"]

_MAX_KEYS = 512


def row_weigher(shares: list[float]) -> Callable[[list[list[float]], int], float]:
    """One row's weighted total, given the columns and the row: the same expression, term
    for term, as the columns' weigher in ranking.py, so a row worked out alone adds up to
    the same float (read straight from the columns: no list of the row's scores built)."""
    terms = " + ".join(f"c[{i}][row] * s{i}" for i in range(len(shares)))
    return eval(f"lambda c, row: {terms}", {f"s{i}": share for i, share in enumerate(shares)})


class _Weighed:
    __slots__ = ("columns", "comparable", "names", "order", "totals")

    def __init__(
        self,
        names: list[str],
        columns: list[list[float]],
        totals: list[float],
        order: list[int],
        comparable: bool | None = None,
    ) -> None:
        self.names = names
        self.columns = columns
        self.totals = totals
        self.order = order
        if comparable is None:
            total = sum(totals)
            comparable = total == total  # no NaN (nor both infinities) among them
        self.comparable = comparable


class TotalsMemo:
    """Weighed totals and their order per (capability, model), by score columns."""

    __slots__ = ("_row", "_weigh", "_weighed", "move")

    def __init__(
        self, weigh: Callable[..., list[float]], row: Callable[[list[list[float]], int], float]
    ) -> None:
        self._weigh = weigh
        self._row = row
        self._weighed: dict[Hashable, _Weighed] = {}
        # the last order that is another one with one row moved: (that one, this one, the
        # row's position in that one, its position in this one), so the ranked nodes can
        # be moved the same way instead of listed again
        self.move: tuple[list[int], list[int], int, int] | None = None

    def totals(
        self,
        key: Hashable,
        names: list[str],
        columns: list[list[float]],
        hint: Sequence[int] = (),
    ) -> tuple[list[float], list[int]]:
        """Each row's total, and the rows best first (ties in row order). ``hint``: the
        rows most likely to have moved (the candidates that changed): a guess, checked."""
        last = self._weighed.get(key)
        if last is None or (last.names is not names and last.names != names):
            return self._weigh_all(key, names, columns)
        changed: set[int] = set()
        rows = range(len(names))
        few = len(names) // 4
        for column, old in zip(columns, last.columns, strict=True):
            if column is old:
                continue
            if hint and len(column) == len(old):
                # the last column with the hinted rows' new scores: equal to this one (a
                # list compare, no call per row), every other row holds the same or an
                # equal score, which the scan below would not count either
                patched = list(old)
                for index in hint:
                    patched[index] = column[index]
                if patched == column:
                    for index in hint:
                        score, prior = column[index], old[index]
                        if score is not prior and score != prior:
                            changed.add(index)
                    continue
            if column != old:
                # the rows holding another object first (without reading the scores: most
                # are not in the CPU's cache), then which of those moved; a row that holds
                # the same object holds the same score (a NaN's too: its total, and the
                # order a sort gives, stand)
                moved = list(compress(rows, map(is_not, column, old)))
                if len(moved) <= few:
                    changed.update(
                        compress(
                            moved,
                            map(ne, map(column.__getitem__, moved), map(old.__getitem__, moved)),
                        )
                    )
                else:
                    changed.update(compress(rows, map(ne, column, old)))
        if not changed:
            last.columns = columns
            return last.totals, last.order
        if len(changed) * 4 > len(names):
            return self._weigh_all(key, names, columns)
        totals = list(last.totals)
        if len(changed) == 1:
            (index,) = changed
            totals[index] = total = self._row(columns, index)
            if last.comparable and total == total:  # (not NaN: it sorts by position)
                order, before, after = _move(last.order, totals, index)
                if order is not last.order:
                    self.move = (last.order, order, before, after)
                self._weighed[key] = _Weighed(names, columns, totals, order, True)
                return totals, order
        else:  # the changed rows alone, through the same weigher: the same floats
            rows = sorted(changed)
            pick = itemgetter(*rows)
            for index, total in zip(rows, self._weigh(*map(pick, columns)), strict=True):
                totals[index] = total
        order = last.order if totals == last.totals else _order(totals)
        self._weighed[key] = _Weighed(names, columns, totals, order)
        return totals, order

    def _weigh_all(
        self, key: Hashable, names: list[str], columns: list[list[float]]
    ) -> tuple[list[float], list[int]]:
        totals = self._weigh(*columns)
        order = _order(totals)
        if len(self._weighed) >= _MAX_KEYS:
            self._weighed.clear()
        self._weighed[key] = _Weighed(names, columns, totals, order)
        return totals, order


def _order(totals: list[Any]) -> list[int]:
    # sorted() is stable, reverse included: ties keep configuration order
    return sorted(range(len(totals)), key=totals.__getitem__, reverse=True)


def _move(order: list[int], totals: list[Any], index: int) -> tuple[list[int], int, int]:
    """The order after row ``index``'s total changed (no total NaN): ``order`` itself
    when the row stays between its neighbours, else the row taken out and put back
    where a sort puts it: after the higher totals and the equal ones of earlier rows.
    With it, where the row was in ``order`` and where it is now."""
    position = order.index(index)
    total = totals[index]
    if position:
        ahead = order[position - 1]
        stays = totals[ahead] > total or (totals[ahead] == total and ahead < index)
    else:
        stays = True
    if stays and position + 1 < len(order):
        behind = order[position + 1]
        stays = total > totals[behind] or (total == totals[behind] and index < behind)
    if stays:
        return order, position, position
    order = list(order)
    del order[position]
    # where (-total, row) goes among the others' in ascending order (the sort's order:
    # total descending, ties by row), by bisection: the first place whose row does not
    # come before it (a loop, not bisect with a key: no call per step)
    low, high = 0, len(order)
    while low < high:
        middle = (low + high) // 2
        row = order[middle]
        other = totals[row]
        if other > total or (other == total and row < index):
            low = middle + 1
        else:
            high = middle
    order.insert(low, index)
    return order, position, low
