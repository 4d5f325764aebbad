"""What one decision can take over from the last one for the same model: the candidates,
and the weighed totals and their order.

Both are pure functions of what they are memoised over: the candidates of the node views
(by revision), the model and the capability; the totals of the score columns. Only rows
that changed are worked out again; the rest is the last decision's, value for value.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Hashable, Sequence
from itertools import compress, repeat
from operator import attrgetter, is_, is_not, itemgetter, ne
from typing import Any

from herd.interfaces import InferenceRequest, NodeView
from herd.node_view import changes_since, latest_change

__all__ = ["CandidateMemo", "TotalsMemo", "row_weigher"]

_MAX_KEYS = 512
# Revisions are kept as arrays of machine integers: copying one (a decision patches the
# changed views' revisions into a copy of the last list) copies memory, without touching
# each number's object as a list copy does (most of them not in the CPU's cache by then).
_Revisions = array
_name = attrgetter("name")
_revision = attrgetter("revision")

# (the last decision's candidate revisions, indexes of the candidates changed since, those
# candidates, and each one's changed fields: None when not known, so every field counts)
Changes = tuple[list[int], Sequence[int], Sequence[NodeView], Sequence[set[str]] | None]
Picker = Callable[[InferenceRequest, list[NodeView], str, dict[str, str]], list[NodeView]]


class _Picked:
    __slots__ = (
        "candidate_names",
        "candidate_revisions",
        "candidates",
        "mark",
        "names",
        "positions",
        "rejected",
        "revisions",
        "slots",
        "verdicts",
        "views",
    )

    def __init__(self, names: list[str], revisions: list[int], verdicts: list[str | None]):
        self.views: list[NodeView] = []  # as given (the same objects, in order)
        self.mark = latest_change()  # what the view journal held when these were read
        self.positions: dict[int, int] | None = None  # view's id -> index (built if asked)
        self.names = names
        self.revisions = revisions
        self.verdicts = verdicts  # per view: None (a candidate) or why not
        self.candidates: list[NodeView] = []
        self.candidate_names: list[str] = []
        self.candidate_revisions: list[int] = []
        self.rejected: dict[str, str] = {}
        self.slots: list[int] | None = None  # each view's candidate position (built if asked)


class CandidateMemo:
    """The candidates per (capability, model), kept with the views' revisions."""

    __slots__ = ("_picked", "_picker", "_picker_reads")

    def __init__(self, picker: Picker, picker_reads: frozenset[str]) -> None:
        self._picker = picker  # Ranker.candidates: views -> candidates, rejections filled
        self._picker_reads = picker_reads  # the view fields it reads
        self._picked: dict[Hashable, _Picked] = {}

    def pick(
        self, request: InferenceRequest, views: list[NodeView], capability: str
    ) -> tuple[list[NodeView], list[str], list[int], dict[str, str], Changes | None]:
        """Candidates, their names and revisions, why the other views are not, and (when
        the candidates are the last decision's) which of them changed since: ``(the last
        decision's candidate revisions, indexes of the candidates that changed, those
        candidates)``.

        A revision is drawn for one view at one change, never shared: equal names and
        revisions mean the same view objects in the same state. The same view objects as
        last time are not read at all: the view journal says which changed, and which of
        their fields (``changes[3]``)."""
        key = (capability, request.model_key)
        last = self._picked.get(key)
        if last is not None and len(views) == len(last.views) and all(map(is_, views, last.views)):
            journaled = self._journaled(request, views, capability, last)
            if journaled is not None:
                return journaled
        revisions = _Revisions("q", map(_revision, views))
        if last is None or len(last.revisions) != len(revisions):
            names = list(map(_name, views))
            return self._pick_all(key, request, views, capability, names, revisions)
        if last.revisions == revisions:  # nothing changed
            last.views = list(views)
            last.mark = latest_change()
            unchanged = (last.candidate_revisions, (), (), ())
            revised = last.candidate_revisions
            return last.candidates, last.candidate_names, revised, last.rejected, unchanged
        # a view whose revision did not move is the same object in the same state, its
        # name included: only the changed ones can be other views
        changed = list(compress(range(len(views)), map(ne, revisions, last.revisions)))
        names = last.names
        if any(views[index].name != names[index] for index in changed):
            names = list(map(_name, views))
            return self._pick_all(key, request, views, capability, names, revisions)
        if len(changed) * 4 <= len(views):
            quick = self._pick_few(key, request, views, capability, revisions, changed, last)
            if quick is not None:
                return quick
        verdicts = list(last.verdicts)
        rejected: dict[str, str] = {}
        self._picker(request, [views[index] for index in changed], capability, rejected)
        for index in changed:
            verdicts[index] = rejected.get(names[index])
        picked = _Picked(names, revisions, verdicts)
        picked.views = list(views)
        same = verdicts == last.verdicts
        if same:
            picked.candidate_names = last.candidate_names
            picked.rejected = last.rejected
        else:
            self._fill_names(picked)
        picked.candidates = list(compress(views, map(is_, verdicts, repeat(None))))
        picked.candidate_revisions = fresh = _Revisions(
            "q", compress(revisions, map(is_, verdicts, repeat(None)))
        )
        self._picked[key] = picked
        changes = None
        if same:
            before = last.candidate_revisions
            order = list(compress(range(len(fresh)), map(ne, fresh, before)))
            changes = (before, order, [picked.candidates[i] for i in order], None)
        return picked.candidates, picked.candidate_names, fresh, picked.rejected, changes

    def _pick_few(
        self,
        key: Hashable,
        request: InferenceRequest,
        views: list[NodeView],
        capability: str,
        revisions: list[int],
        changed: list[int],
        last: _Picked,
    ) -> tuple[list[NodeView], list[str], list[int], dict[str, str], Changes] | None:
        """A few views changed, each still a candidate (the common case: a request started
        or finished there): the last candidates, with the changed ones' revisions. None
        when one of them was or is no candidate, or is another view object."""
        slots = last.slots
        if slots is None:
            slots = last.slots = self._slots(last.verdicts)
        candidates = last.candidates
        for index in changed:
            slot = slots[index]
            if slot < 0 or candidates[slot] is not views[index]:
                return None
        rejected: dict[str, str] = {}
        moved = [views[index] for index in changed]
        if self._picker(request, moved, capability, rejected) != moved:
            return None  # (an unchanged candidate list keeps the changed ones)
        before = last.candidate_revisions
        fresh = before[:]
        order = [slots[index] for index in changed]
        for index, slot in zip(changed, order, strict=True):
            fresh[slot] = revisions[index]
        last.revisions = revisions  # the rest stands
        last.candidate_revisions = fresh
        last.views = list(views)
        last.mark = latest_change()
        changes = (before, order, moved, None)
        return candidates, last.candidate_names, fresh, last.rejected, changes

    def _journaled(
        self,
        request: InferenceRequest,
        views: list[NodeView],
        capability: str,
        last: _Picked,
    ) -> tuple[list[NodeView], list[str], list[int], dict[str, str], Changes] | None:
        """The same view objects as last time: what changed since, from the view journal
        (only those views are read). None when the journal does not reach back, or a
        change may have moved which views are candidates and how they are named."""
        entries = changes_since(last.mark)
        if entries is None:
            return None
        candidates = last.candidates
        if entries:
            positions = last.positions
            if positions is None:
                positions = last.positions = {id(view): i for i, view in enumerate(views)}
            if len(positions) != len(views):
                return None  # a view listed twice: its changes belong to two rows
            fields: dict[int, set[str]] = {}
            for _, view, name in entries:
                index = positions.get(id(view))  # (a listed view is alive: ids are unique)
                if index is not None:
                    seen = fields.get(index)
                    if seen is None:
                        fields[index] = {name}
                    else:
                        seen.add(name)
            last.mark = entries[-1][0]
        else:
            fields = {}
        if not fields:
            unchanged = (last.candidate_revisions, (), (), ())
            revised = last.candidate_revisions
            return candidates, last.candidate_names, revised, last.rejected, unchanged
        slots = last.slots
        if slots is None:
            slots = last.slots = self._slots(last.verdicts)
        picker_reads = self._picker_reads
        changed = sorted(fields)
        revisions = last.revisions[:]  # (a copy)
        order = []
        moved = []
        moved_fields = []
        for index in changed:
            view = views[index]
            revisions[index] = view.revision
            touched = fields[index]
            if not picker_reads.isdisjoint(touched):
                return None  # (its candidacy or its name may have moved)
            slot = slots[index]
            if slot >= 0:  # a candidate (a change to another one matters to no signal)
                order.append(slot)
                moved.append(view)
                moved_fields.append(touched)
        last.revisions = revisions
        before = last.candidate_revisions
        if not order:
            unchanged = (before, (), (), ())
            return candidates, last.candidate_names, before, last.rejected, unchanged
        fresh = before[:]
        for slot, view in zip(order, moved, strict=True):
            fresh[slot] = view.revision
        last.candidate_revisions = fresh
        changes = (before, order, moved, moved_fields)
        return candidates, last.candidate_names, fresh, last.rejected, changes

    @staticmethod
    def _slots(verdicts: list[str | None]) -> list[int]:
        """Each view's position among the candidates, -1 for a view that is none."""
        slots = []
        position = 0
        for verdict in verdicts:
            if verdict is None:
                slots.append(position)
                position += 1
            else:
                slots.append(-1)
        return slots

    def _pick_all(
        self,
        key: Hashable,
        request: InferenceRequest,
        views: list[NodeView],
        capability: str,
        names: list[str],
        revisions: list[int],
    ) -> tuple[list[NodeView], list[str], list[int], dict[str, str]]:
        rejected: dict[str, str] = {}
        candidates = self._picker(request, views, capability, rejected)
        picked = _Picked(names, revisions, [rejected.get(name) for name in names])
        picked.views = list(views)
        picked.candidates = candidates
        self._fill_names(picked)
        mask = map(is_, picked.verdicts, repeat(None))
        picked.candidate_revisions = _Revisions("q", compress(revisions, mask))
        if len(self._picked) >= _MAX_KEYS:
            self._picked.clear()
        self._picked[key] = picked
        return candidates, picked.candidate_names, picked.candidate_revisions, rejected, None

    @staticmethod
    def _fill_names(picked: _Picked) -> None:
        verdicts = picked.verdicts
        picked.candidate_names = list(compress(picked.names, map(is_, verdicts, repeat(None))))
        picked.rejected = {
            name: verdict
            for name, verdict in zip(picked.names, verdicts, strict=True)
            if verdict is not None
        }


def row_weigher(shares: list[float]) -> Callable[..., float]:
    """One row's weighted total: the same expression, term for term, as the columns'
    weigher in ranking.py, so a row worked out alone adds up to the same float."""
    count = len(shares)
    columns = ", ".join(f"c{i}" for i in range(count))
    terms = " + ".join(f"c{i} * s{i}" for i in range(count))
    return eval(f"lambda {columns}: {terms}", {f"s{i}": share for i, share in enumerate(shares)})


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

    __slots__ = ("_row", "_weigh", "_weighed")

    def __init__(self, weigh: Callable[..., list[float]], row: Callable[..., float]) -> None:
        self._weigh = weigh
        self._row = row
        self._weighed: dict[Hashable, _Weighed] = {}

    def totals(
        self, key: Hashable, names: list[str], columns: list[list[float]]
    ) -> tuple[list[float], list[int]]:
        """Each row's total, and the rows best first (ties in row order)."""
        last = self._weighed.get(key)
        if last is None or (last.names is not names and last.names != names):
            return self._weigh_all(key, names, columns)
        changed: set[int] = set()
        rows = range(len(names))
        few = len(names) // 4
        for column, old in zip(columns, last.columns, strict=True):
            if column is not old and column != old:
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
            totals[index] = total = self._row(*[column[index] for column in columns])
            if last.comparable and total == total:  # (not NaN: it sorts by position)
                order = _moved(last.order, totals, index)
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


def _moved(order: list[int], totals: list[Any], index: int) -> list[int]:
    """The order after row ``index``'s total changed (no total NaN): ``order`` itself
    when the row stays between its neighbours, else the row taken out and put back
    where a sort puts it: after the higher totals and the equal ones of earlier rows."""
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
        return order
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
    return order
