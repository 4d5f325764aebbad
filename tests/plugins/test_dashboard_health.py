"""Health checks, fleet events and model placement advice, judged without a router."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from herd import LoadedModel, ModelEntry, NodeView
from herd_plugins.dashboard.advice import GB, recommend
from herd_plugins.dashboard.health import HealthInputs, check_health
from herd_plugins.dashboard.monitor import FleetMonitor, node_card, queue_items


def card(name: str, state: str = "online", **fields: Any) -> dict[str, Any]:
    base = {"name": name, "state": state, "ram_used": 0, "ram_total": 0}
    return {**base, "vram_used": 0, "vram_total": 0, **fields}


def statuses(inputs: HealthInputs) -> dict[str, str]:
    return {check["id"]: check["status"] for check in check_health(inputs)}


def test_a_healthy_fleet_passes_every_check() -> None:
    inputs = HealthInputs(
        nodes=[card("a", ram_used=4 * GB, ram_total=32 * GB)],
        traces={"requests": 100, "errors": 1, "retried": 2},
        dropped_traces=0,
    )
    assert set(statuses(inputs).values()) == {"ok"}


def test_each_problem_is_named_with_advice() -> None:
    inputs = HealthInputs(
        nodes=[
            card("a", "offline"),
            card("b", vram_used=int(23.5 * GB), vram_total=24 * GB),
        ],
        status_changes={"a": 4},
        loads={("b", "qwen3:4b"): 5, ("b", "llama3.2:3b"): 1},
        context_reloads=[("b", "qwen3:4b", "4096 -> 8192")],
        traces={"requests": 50, "errors": 15, "retried": 10},
        reaped=2,
        held_peak=3,
        dropped_traces=7,
    )
    checks = {check["id"]: check for check in check_health(inputs)}
    expected = {
        "offline": "warn",
        "flapping": "warn",
        "memory": "bad",
        "thrashing": "warn",
        "errors": "bad",
        "retries": "warn",
        "zombies": "warn",
        "saturation": "bad",
        "context": "warn",
        "dropped": "warn",
    }
    assert {key: check["status"] for key, check in checks.items()} == expected
    assert "qwen3:4b on b (5x)" in checks["thrashing"]["detail"]
    assert "b (VRAM 98%)" in checks["memory"]["detail"]
    assert all(check["advice"] for check in checks.values())


def test_without_traces_or_memory_the_checks_say_unknown() -> None:
    result = statuses(HealthInputs(nodes=[card("a")]))
    assert result["memory"] == result["errors"] == result["dropped"] == "unknown"
    assert statuses(HealthInputs(nodes=[]))["offline"] == "bad"


def test_the_monitor_notes_state_changes_loads_and_context_reloads() -> None:
    view = NodeView(name="a", url="http://127.0.0.1:1", status="online")
    monitor = FleetMonitor()
    monitor._note_changes([view], 100.0)
    view.loaded = {"m:1": LoadedModel(name="m:1", key="m:1", context_length=4096)}
    monitor._note_changes([view], 101.0)
    view.loaded = {"m:1": LoadedModel(name="m:1", key="m:1", context_length=8192)}
    view.status = "offline"
    monitor._note_changes([view], 102.0)
    view.loaded = {}
    monitor._note_changes([view], 103.0)
    kinds = [(e.kind, e.model, e.detail) for e in monitor.events]
    assert kinds == [
        ("load", "m:1", "4096"),
        ("status", "", "offline"),
        ("context", "m:1", "4096 -> 8192"),
        ("unload", "m:1", ""),
    ]
    assert [e.kind for e in monitor.recent("status", 10, now=103.0)] == ["status"]


def test_queue_items_list_running_then_waiting_requests_oldest_first() -> None:
    now = time.time()
    request = SimpleNamespace(request_id="r1", kind="image", tags=["t"], api="openai")
    waiting = SimpleNamespace(request_id="r2", kind="stt", tags=[], api="ollama")
    request.received_at, waiting.received_at = now - 5, now - 1
    queue = SimpleNamespace(
        active=[SimpleNamespace(request=request)], waiters=[(None, waiting)], pending=1
    )
    board = SimpleNamespace(queues={"n1": {"sd:1": queue}})
    items = queue_items(board, now)
    assert [(i["id"], i["state"], i["kind"]) for i in items] == [
        ("r1", "running", "image"),
        ("r2", "queued", "stt"),
    ]
    assert items[1]["position"] == 1 and items[0]["wait_s"] == 5.0


def test_a_node_card_reports_resources_and_the_hottest_gpu() -> None:
    view = NodeView(
        name="a",
        url="u",
        status="online",
        ram_total=64 * GB,
        ram_available=16 * GB,
        gpus=[{"temperature": 61.0}, {"temperature": 74.0}],
        draining=True,
    )
    result = node_card(view)
    assert result["state"] == "draining" and result["temperature"] == 74.0
    assert result["ram_used"] == 48 * GB


def _node(name: str, total: int, disk: dict[str, int], loaded: tuple[str, ...] = ()) -> NodeView:
    view = NodeView(name=name, url="u", status="online", vram_total=total)
    view.models = {k: ModelEntry(name=k, key=k, size=size) for k, size in disk.items()}
    view.loaded = {k: LoadedModel(name=k, key=k, size=disk[k], size_vram=disk[k]) for k in loaded}
    return view


def test_recommend_keeps_busy_models_where_they_fit_and_names_idle_ones() -> None:
    big = _node(
        "big", 24 * GB, {"chat:7b": 5 * GB, "code:14b": 9 * GB, "old:3b": 2 * GB}, ("old:3b",)
    )
    small = _node("small", 8 * GB, {"chat:7b": 5 * GB}, ("chat:7b",))
    demand = [
        {"model": "chat:7b", "requests": 60, "cold_loads": 4},
        {"model": "code:14b", "requests": 30, "cold_loads": 0},
        {"model": "gone:1b", "requests": 10, "cold_loads": 0},
    ]
    plan = recommend(demand, [big, small])
    by_model = {p["model"]: p for p in plan["placements"]}
    assert by_model["chat:7b"]["nodes"] == ["small", "big"]  # loaded first, then a 2nd copy
    assert by_model["chat:7b"]["action"] == "load"
    assert "routing.keep_alive" in by_model["chat:7b"]["reason"]
    assert by_model["code:14b"]["nodes"] == ["big"] and by_model["code:14b"]["action"] == "load"
    assert by_model["gone:1b"]["action"] == "missing"
    assert plan["keep_alive"] == {"chat:7b": -1}
    assert [(i["model"], i["node"]) for i in plan["idle"]] == [("old:3b", "big")]


def test_a_model_too_big_for_every_node_is_said_to_load_on_demand() -> None:
    tiny = _node("tiny", 4 * GB, {"huge:70b": 40 * GB})
    plan = recommend([{"model": "huge:70b", "requests": 3}], [tiny])
    assert plan["placements"][0]["action"] == "no-room"
