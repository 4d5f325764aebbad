"""What one decision can take over from the last one for the same model: the candidates
(the weighed totals and their order are in totals_memo.py).

A pure function of what it is memoised over: the candidates of the node views (by
revision, or by the view journal), the model and the capability. Only views that changed
are looked at again; the rest is the last decision's, verdict for verdict.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Hashable, Sequence
from itertools import compress, repeat
from operator import attrgetter, is_, ne

from herd.interfaces import InferenceRequest, NodeView
from herd.node_view import changes_since, latest_change

__all__ = ["CandidateMemo"]

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
