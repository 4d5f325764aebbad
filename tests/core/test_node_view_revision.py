"""A view's revision moves with every change to it (any field, any in-place change to its
dicts and lists), so the ranker's per-node cache can trust an unchanged revision."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from herd import LoadedModel, ModelEntry, NodeView

# --- every change bumps the revision ---------------------------------------------------

NEW_VALUES = {
    "name": "renamed",
    "url": "http://elsewhere",
    "type": "openai",
    "status": "degraded",
    "last_error": "boom",
    "last_seen": 5.0,
    "version": "9",
    "models": {"m": ModelEntry(name="m", key="m")},
    "loaded": {"m": LoadedModel(name="m", key="m")},
    "in_flight": 3,
    "in_flight_by_model": {"m": 3},
    "capabilities": frozenset({"image"}),
    "num_parallel": 7,
    "max_loaded_models": 2,
    "ram_total": 5,
    "ram_available": 4,
    "vram_total": 3,
    "vram_used": 2,
    "cpu_count": 8,
    "cpu_percent": 50.0,
    "gpus": [{"temperature": 80}],
    "agent": True,
    "draining": True,
    "tags": ["gpu"],
    "service_models": {"embed": {"m": ModelEntry(name="m", key="m")}},
    "primary_capabilities": frozenset({"text"}),
    "assumed_parallel": 9,
    "learned_parallel": {"m": 2},
    "queued_by_model": {"m": 1},
    "loading": {"m": 4096},
    "unloaded_at": {"m": 1.0},
    "online_since": 2.0,
    "vram_seen": 1,
}


def test_every_field_of_a_view_is_covered_here() -> None:
    fields = {f.name for f in dataclasses.fields(NodeView)} - {"revision"}
    assert fields == set(NEW_VALUES), "a new NodeView field: add it to NEW_VALUES"


@pytest.mark.parametrize("field", sorted(NEW_VALUES))
def test_setting_any_field_bumps_the_revision(field: str) -> None:
    view = NodeView(name="a", url="http://a")
    before = view.revision
    setattr(view, field, NEW_VALUES[field])
    assert view.revision > before


DICT_CHANGES = [  # (name, change(dict, a value of the right kind))
    ("setitem", lambda d, v: d.__setitem__("k", v)),
    ("delitem", lambda d, v: d.__delitem__("old")),
    ("pop", lambda d, v: d.pop("old")),
    ("popitem", lambda d, v: d.popitem()),
    ("setdefault", lambda d, v: d.setdefault("k", v)),
    ("update", lambda d, v: d.update({"k": v})),
    ("update kwargs", lambda d, v: d.update(k=v)),
    ("ior", lambda d, v: d.__ior__({"k": v})),
    ("clear", lambda d, v: d.clear()),
]
DICT_FIELDS = [
    "models",
    "loaded",
    "in_flight_by_model",
    "learned_parallel",
    "queued_by_model",
    "loading",
    "unloaded_at",
    "service_models",
]


@pytest.mark.parametrize("field", DICT_FIELDS)
@pytest.mark.parametrize("change", DICT_CHANGES, ids=[c[0] for c in DICT_CHANGES])
def test_changing_a_views_dict_in_place_bumps_the_revision(field: str, change) -> None:
    view = NodeView(name="a", url="http://a")
    value = {} if field == "service_models" else 0
    setattr(view, field, {"old": value})
    alias = getattr(view, field)  # through any name the dict goes by
    before = view.revision
    change[1](alias, value)
    assert view.revision > before


def test_a_dict_assigned_to_a_view_is_copied_so_the_original_cannot_change_it_silently() -> None:
    view = NodeView(name="a", url="http://a")
    mine = {"m": 1}
    view.in_flight_by_model = mine
    before = view.revision
    mine["m"] = 2
    assert view.in_flight_by_model == {"m": 1} and view.revision == before


def test_inner_service_model_dicts_bump_the_revision() -> None:
    view = NodeView(name="a", url="http://a")
    view.service_models = {"embed": {}}
    before = view.revision
    view.service_models["embed"]["m"] = ModelEntry(name="m", key="m")
    assert view.revision > before
    before = view.revision
    view.service_models.setdefault("image", {})["x"] = ModelEntry(name="x", key="x")
    assert view.revision > before


LIST_CHANGES = [
    ("append", lambda items: items.append(1)),
    ("extend", lambda items: items.extend([1])),
    ("insert", lambda items: items.insert(0, 1)),
    ("pop", lambda items: items.pop()),
    ("remove", lambda items: items.remove("old")),
    ("clear", lambda items: items.clear()),
    ("sort", lambda items: items.sort()),
    ("reverse", lambda items: items.reverse()),
    ("setitem", lambda items: items.__setitem__(0, 1)),
    ("delitem", lambda items: items.__delitem__(0)),
    ("iadd", lambda items: items.__iadd__([1])),
    ("imul", lambda items: items.__imul__(2)),
]


@pytest.mark.parametrize("field", ["gpus", "tags"])
@pytest.mark.parametrize("change", LIST_CHANGES, ids=[c[0] for c in LIST_CHANGES])
def test_changing_a_views_list_in_place_bumps_the_revision(field: str, change) -> None:
    view = NodeView(name="a", url="http://a")
    setattr(view, field, ["old"])
    before = view.revision
    change[1](getattr(view, field))
    assert view.revision > before


def test_model_entries_cannot_change_in_place() -> None:
    view = NodeView(name="a", url="http://a", loaded={"m": LoadedModel(name="m", key="m")})
    with pytest.raises(AttributeError):
        view.loaded["m"].size = 5  # type: ignore[misc]
    before = view.revision
    view.loaded["m"] = msgspec.structs.replace(view.loaded["m"], size=5)
    assert view.revision > before


def test_revisions_are_never_shared_between_views() -> None:
    views = [NodeView(name=str(i), url="u") for i in range(20)]
    for view in views[::2]:
        view.in_flight += 1
    assert len({view.revision for view in views}) == len(views)


def test_counting_a_request_in_flight_is_one_revision_naming_both_fields() -> None:
    from herd.node_view import changes_since, latest_change

    view = NodeView(name="n", url="u", in_flight=1, in_flight_by_model={"other": 1})
    for change, in_flight, by_model in [
        (1, 2, {"other": 1, "m": 1}),
        (1, 3, {"other": 1, "m": 2}),
        (-1, 2, {"other": 1, "m": 1}),
        (-1, 1, {"other": 1}),  # a model at 0 leaves the dict
    ]:
        mark, before = latest_change(), view.revision
        view.count_in_flight("m", change)
        assert (view.in_flight, view.in_flight_by_model) == (in_flight, by_model)
        assert view.revision > before
        assert [(r, v, f) for r, v, f in changes_since(mark)] == [
            (view.revision, view, "in_flight"),
            (view.revision, view, "in_flight_by_model"),
        ]
    view.in_flight_by_model["m"] = 5  # the dict is still the tracked one
    assert view.revision > before
