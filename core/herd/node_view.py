"""What the router knows about a node: models on disk, models loaded, and its live view.

Signals and the scheduler read :class:`NodeView`; backends fill :class:`NodeReport`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import count
from operator import itemgetter
from typing import Any

import msgspec

__all__ = [
    "VIEW_FIELDS",
    "LoadedModel",
    "ModelEntry",
    "NodeReport",
    "NodeView",
    "changes_since",
    "latest_change",
    "next_revision",
]

next_revision = count(1).__next__
"""The next number of the one counter behind every :attr:`NodeView.revision` (and
:meth:`herd.Signal.invalidate`): a larger number is a later change, whichever view."""

# The change journal: (revision, view, field) for the latest changes to any view, oldest
# first. It lets a reader that remembers the revision it last looked at find what changed
# since without reading every view (see changes_since); it is trimmed to the latest
# _JOURNAL_KEPT entries whenever it grows past twice that (until then it holds the views
# it names: a view dropped from the fleet is freed a few thousand changes later).
_JOURNAL: list[tuple[int, NodeView, str]] = []
_JOURNAL_KEPT = 2048
_horizon = [0]  # changes at or before this revision may be missing from the journal
_revision_of = itemgetter(0)


def _trim_journal() -> None:
    _horizon[0] = _JOURNAL[-_JOURNAL_KEPT - 1][0]
    del _JOURNAL[:-_JOURNAL_KEPT]


def latest_change() -> int:
    """The revision of the latest change to any view (0 before the first): what to hand
    :func:`changes_since` next time to learn what changed in between."""
    return _JOURNAL[-1][0] if _JOURNAL else 0


def changes_since(revision: int) -> list[tuple[int, NodeView, str]] | None:
    """Every change to any view after ``revision`` (from :func:`latest_change`), oldest
    first: ``(revision, view, field)``, one entry per write (a field written twice is
    listed twice; a change to one of a view's dicts or lists names that field). None when
    the journal no longer reaches back that far (it keeps the latest couple of thousand
    changes): compare the views' revisions instead.

    Only views of this process count, and only their own writes: a view the caller did
    not hold at ``revision`` may have changed before it, unlisted."""
    if revision < _horizon[0]:
        return None
    journal = _JOURNAL
    index = len(journal)
    for _ in range(8):  # most readers are a few changes behind: read only those
        if not index or journal[index - 1][0] <= revision:
            return journal[index:]
        index -= 1
    return journal[bisect_right(journal, revision, 0, index, key=_revision_of) :]


class _TrackedDict(dict):  # type: ignore[type-arg]
    """A view's dict: every change to it bumps the view's revision, through any alias."""

    __slots__ = ("_field", "_view")

    def __init__(self, items: Any, view: NodeView, name: str) -> None:
        dict.__init__(self, items)
        self._view = view
        self._field = name

    def __reduce__(self) -> Any:  # copies and pickles are plain dicts
        return (dict, (dict(self),))

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self._view._bump(self._field)

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self._view._bump(self._field)

    def __ior__(self, other: Any) -> Any:
        self.update(other)
        return self

    def pop(self, *args: Any) -> Any:
        if args and args[0] in self:
            self._view._bump(self._field)
        return dict.pop(self, *args)

    def popitem(self) -> Any:
        item = dict.popitem(self)
        self._view._bump(self._field)
        return item

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        dict.clear(self)
        self._view._bump(self._field)


class _TrackedMapOfMaps(_TrackedDict):
    """``service_models``: its inner dicts are tracked too."""

    __slots__ = ()

    def __init__(self, items: Any, view: NodeView, name: str) -> None:
        dict.__init__(self, {k: _TrackedDict(v, view, name) for k, v in dict(items).items()})
        self._view = view
        self._field = name

    def __setitem__(self, key: Any, value: Any) -> None:
        _TrackedDict.__setitem__(self, key, _TrackedDict(value, self._view, self._field))


class _TrackedList(list):  # type: ignore[type-arg]
    """A view's list (``gpus``, ``tags``): every change bumps the view's revision."""

    __slots__ = ("_field", "_view")

    def __init__(self, items: Any, view: NodeView, name: str) -> None:
        list.__init__(self, items)
        self._view = view
        self._field = name

    def __reduce__(self) -> Any:
        return (list, (list(self),))

    def _changed(method: Any) -> Any:
        def changed(self: _TrackedList, *args: Any) -> Any:
            out = method(self, *args)
            self._view._bump(self._field)
            return out

        return changed

    __setitem__ = _changed(list.__setitem__)
    __delitem__ = _changed(list.__delitem__)
    __iadd__ = _changed(list.__iadd__)
    __imul__ = _changed(list.__imul__)
    append = _changed(list.append)
    extend = _changed(list.extend)
    insert = _changed(list.insert)
    pop = _changed(list.pop)
    remove = _changed(list.remove)
    clear = _changed(list.clear)
    sort = _changed(list.sort)
    reverse = _changed(list.reverse)
    del _changed


# a view's containers, by field: copied into tracking ones when assigned
_CONTAINERS: dict[str, type] = {
    "models": _TrackedDict,
    "loaded": _TrackedDict,
    "in_flight_by_model": _TrackedDict,
    "learned_parallel": _TrackedDict,
    "queued_by_model": _TrackedDict,
    "loading": _TrackedDict,
    "unloaded_at": _TrackedDict,
    "service_models": _TrackedMapOfMaps,
    "gpus": _TrackedList,
    "tags": _TrackedList,
}


class ModelEntry(msgspec.Struct, frozen=True):
    """A model on a node's disk, as its ``/api/tags`` reports it.

    Frozen, like :class:`LoadedModel`: a node view's entries are replaced, never changed in
    place, so that every change goes through the view and bumps its ``revision``
    (``msgspec.structs.replace`` makes a changed copy).

    Attributes:
        name: Display name as the node reports it (``llama3.2:latest``).
        key: Normalised name used for matching (see :func:`herd.names.normalize_model_name`).
        size: Bytes on disk.
        raw: The node's entry, unchanged, for replies that pass it through.
    """

    name: str
    key: str
    size: int = 0
    digest: str = ""
    details: dict[str, Any] = {}
    capabilities: list[str] = []
    raw: dict[str, Any] = {}


class LoadedModel(msgspec.Struct, frozen=True):
    """A model loaded on a node, as its ``/api/ps`` reports it."""

    name: str
    key: str
    size: int = 0
    size_vram: int = 0
    context_length: int = 0
    expires_at: str = ""
    raw: dict[str, Any] = {}


class NodeReport(msgspec.Struct):
    """What one poll of a node found out."""

    version: str = ""
    models: list[ModelEntry] = []
    loaded: list[LoadedModel] = []


@dataclass(slots=True)
class NodeView:
    """The router's picture of one node, read by signals and the scheduler.

    Signals read it synchronously (no ``await`` while scoring), so what they see is a
    consistent snapshot of the event loop's state.

    Attributes:
        name: The node's configured name.
        url: Base URL of the node's server.
        status: ``online``, ``degraded`` (missed heartbeats), ``offline`` or ``unknown``
            (not polled yet).
        models: Models on disk, by normalised name.
        loaded: Models in memory, by normalised name.
        in_flight: Requests being served by this node through this router.
        in_flight_by_model: The same, per normalised model name.
        num_parallel: Requests the node serves at once per model (0 = unknown).
        vram_total: Bytes of GPU memory over all GPUs (0 = unknown; agent-reported).
        draining: The node takes no new requests; in-flight ones finish.
        capabilities: Workloads the node serves: its own backend's and its services'.
        service_models: Models the node's services offer, by capability (``transcribe``,
            ``image``, ``embed``): only services that answered their last poll.
        primary_capabilities: The node's own backend's capabilities (None: all of
            ``capabilities``).
        revision: Grows on every change to the view: an attribute set, or a change to
            one of its dicts or lists (they are tracking copies of what was assigned;
            model entries are frozen). The ranker recomputes a cached score only for a
            node whose revision passed the one it was computed at (see
            ``docs/extension-api.md``, "Caching scores"). Read-only. Every change is
            also journaled with the field it wrote (:func:`changes_since`).
    """

    name: str
    url: str
    type: str = "ollama"
    status: str = "unknown"
    last_error: str = ""
    last_seen: float = 0.0
    version: str = ""
    models: dict[str, ModelEntry] = field(default_factory=dict)
    loaded: dict[str, LoadedModel] = field(default_factory=dict)
    in_flight: int = 0
    in_flight_by_model: dict[str, int] = field(default_factory=dict)
    capabilities: frozenset[str] = frozenset()
    # What only the machine knows (reported by herd-node; 0 / empty when unknown):
    num_parallel: int = 0
    max_loaded_models: int = 0
    ram_total: int = 0
    ram_available: int = 0
    vram_total: int = 0
    vram_used: int = 0
    cpu_count: int = 0
    cpu_percent: float = 0.0
    gpus: list[dict[str, Any]] = field(default_factory=list)
    agent: bool = False
    draining: bool = False
    tags: list[str] = field(default_factory=list)
    # The node's other services: models by capability, answering ones only.
    service_models: dict[str, dict[str, ModelEntry]] = field(default_factory=dict)
    primary_capabilities: frozenset[str] | None = None
    # What the router itself remembers about the node (scheduler and fleet keep these):
    assumed_parallel: int = 4
    learned_parallel: dict[str, int] = field(default_factory=dict)
    queued_by_model: dict[str, int] = field(default_factory=dict)
    loading: dict[str, int] = field(default_factory=dict)
    unloaded_at: dict[str, float] = field(default_factory=dict)
    online_since: float = 0.0
    vram_seen: int = 0
    revision: int = field(default=0, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # every write counts as a change (an equal value too: comparing would cost more);
        # containers are copied into tracking ones, so changes made in place count too
        # (a container already this view's, for this field, is kept as it is)
        kind = _CONTAINERS.get(name)
        if kind is not None and (
            value.__class__ is not kind or value._view is not self or value._field != name
        ):
            value = kind(value, self, name)
        object.__setattr__(self, name, value)
        revision = next_revision()
        object.__setattr__(self, "revision", revision)
        _JOURNAL.append((revision, self, name))
        if len(_JOURNAL) > 2 * _JOURNAL_KEPT:
            _trim_journal()

    def count_in_flight(self, model: str, change: int) -> None:
        """One request of ``model`` more (``change`` 1) or fewer (-1) in flight:
        ``in_flight`` and ``in_flight_by_model`` changed together, as one revision (the
        journal names both fields). A model's count that reaches 0 leaves the dict.

        The scheduler calls it twice per request; two writes through the fields would
        each take a revision and a tracked-container call."""
        object.__setattr__(self, "in_flight", self.in_flight + change)
        by_model = self.in_flight_by_model
        left = by_model.get(model, 0) + change
        if left > 0:
            dict.__setitem__(by_model, model, left)
        else:
            dict.pop(by_model, model, None)
        revision = next_revision()
        object.__setattr__(self, "revision", revision)
        _JOURNAL.append((revision, self, "in_flight"))
        _JOURNAL.append((revision, self, "in_flight_by_model"))
        if len(_JOURNAL) > 2 * _JOURNAL_KEPT:
            _trim_journal()

    def _bump(self, name: str) -> None:
        revision = next_revision()
        object.__setattr__(self, "revision", revision)
        _JOURNAL.append((revision, self, name))
        if len(_JOURNAL) > 2 * _JOURNAL_KEPT:
            _trim_journal()

    @property
    def online(self) -> bool:
        """True when the last poll or request reached the node."""
        return self.status == "online"

    @property
    def slots(self) -> int:
        """Requests served at once per model: ``num_parallel``, else ``assumed_parallel``.

        ``assumed_parallel`` is YAML ``routing.default_num_parallel``; ``/fleet/queue`` says
        which of the two a node's queues use. ``queued_by_model`` counts requests waiting in
        the router's queues; ``loading`` names models the router sent a request for while
        they were not loaded (value: the ``num_ctx`` asked, 0 = the node's default), until a
        poll shows them; ``unloaded_at`` says when a model left memory (thermal: warm);
        ``online_since`` is when the node last came online (availability: flapping);
        ``vram_seen`` is the most memory its loaded models (``/api/ps`` ``size_vram``)
        ever took at once: a lower bound of its memory when no agent reports it.
        """
        return self.num_parallel or self.assumed_parallel

    def memory(self) -> tuple[int, bool]:
        """``(bytes, exact)``: the node's model memory, GPU (agent-reported) else RAM
        (unified memory), exactly; else the most its models ever took at once, a lower
        bound learned from ``/api/ps``; else ``(0, False)``."""
        if self.vram_total:
            return self.vram_total, True
        if self.ram_total:
            return self.ram_total, True
        return self.vram_seen, False

    def slots_for(self, key: str) -> int:
        """Requests served at once for model ``key``: ``num_parallel`` when told, else what
        the router learned from the node's latency (``learned_parallel``, by model; see
        ``routing.adaptive_concurrency``), else ``assumed_parallel``."""
        return self.num_parallel or self.learned_parallel.get(key) or self.assumed_parallel

    def has_model(self, key: str) -> bool:
        """True when the node has the model (by normalised name) on disk or loaded."""
        return key in self.models or key in self.loaded

    def serves(self, capability: str, key: str) -> bool:
        """True when the node can serve ``key`` for ``capability`` (e.g. ``transcribe``).

        A model one of the node's services offers for that capability counts; otherwise
        the node's own backend must have the capability and the model.
        """
        if key in self.service_models.get(capability, ()):
            return True
        own = self.capabilities if self.primary_capabilities is None else self.primary_capabilities
        return capability in own and self.has_model(key)


VIEW_FIELDS: frozenset[str] = frozenset(NodeView.__dataclass_fields__) - {"revision"}
"""The names of :class:`NodeView`'s fields, as :func:`changes_since` reports them."""
