"""Health checks, fleet events and model placement advice, judged without a router."""

from __future__ import annotations

import time
from typing import Any

from herd import LoadedModel, ModelEntry, NodeView
from herd_plugins.dashboard.advice import recommend, size_text
from herd_plugins.dashboard.health import HealthInputs, check_health
from herd_plugins.dashboard.monitor import FleetMonitor, node_card, queue_items, workload_of

GB = 1_000_000_000


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
    requests = [
        {
            "id": "r2",
            "kind": "stt",
            "endpoint": "transcriptions",
            "api": "openai",
            "model": "w",
            "node": "n1",
            "state": "queued",
            "position": 1,
            "received_at": now - 1,
            "tags": [],
        },
        {
            "id": "r1",
            "kind": "image",
            "endpoint": "images",
            "api": "openai",
            "model": "sd:1",
            "node": "n1",
            "state": "running",
            "position": 0,
            "received_at": now - 5,
            "tags": ["t"],
        },
        # an embeddings call is [EMBED] whatever kind the route gave it
        {
            "id": "r3",
            "kind": "text",
            "endpoint": "embeddings",
            "api": "ollama",
            "model": "m",
            "node": "n1",
            "state": "queued",
            "position": 2,
            "received_at": now,
            "tags": [],
        },
    ]
    items = queue_items(requests, now)
    assert [(i["id"], i["state"], i["kind"]) for i in items] == [
        ("r1", "running", "image"),
        ("r2", "queued", "stt"),
        ("r3", "queued", "embed"),
    ]
    assert items[1]["position"] == 1 and items[0]["wait_s"] == 5.0
    assert "position" not in items[0]


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


def test_recommend_lists_only_actions_each_with_evidence() -> None:
    big = _node(
        "big", 24 * GB, {"chat:7b": 5 * GB, "code:14b": 9 * GB, "old:3b": 2 * GB}, ("old:3b",)
    )
    small = _node("small", 8 * GB, {"chat:7b": 5 * GB}, ("chat:7b",))
    spare = _node("spare", 16 * GB, {})
    demand = [
        {"model": "chat:7b", "requests": 60, "cold_loads": 4, "avg_cold_load_ms": 2100.0},
        {"model": "code:14b", "requests": 30, "cold_loads": 0},
        {"model": "gone:1b", "requests": 10, "cold_loads": 0, "errors": 0, "rejected": 10},
    ]
    plan = recommend(demand, [big, small, spare])
    kinds = [(a["kind"], a["model"], a["node"]) for a in plan["actions"]]
    # code:14b is fine where it is: no row says "keep"
    assert kinds == [
        ("pin", "chat:7b", ""),
        ("pull", "gone:1b", "big"),  # the most free memory
        ("unload", "old:3b", "big"),
    ]
    pin, pull, unload = plan["actions"]
    assert (
        '"chat:7b": -1' in pin["yaml"] and "loaded cold 4 times, 2.1 s each" in pin["evidence"][1]
    )
    assert "10 of them failed or were refused" in pull["evidence"]
    assert unload["evidence"] == ["no request in the last day", "holds 2.0 GB on big"]


def test_a_busy_model_on_one_node_gets_a_second_and_a_calm_fleet_gets_nothing() -> None:
    one = _node("one", 8 * GB, {"chat:7b": 5 * GB}, ("chat:7b",))
    two = _node("two", 16 * GB, {})
    plan = recommend([{"model": "chat:7b", "requests": 40}], [one, two])
    assert [(a["kind"], a["node"]) for a in plan["actions"]] == [("spread", "two")]
    both = _node("two", 16 * GB, {"chat:7b": 5 * GB}, ("chat:7b",))
    assert recommend([{"model": "chat:7b", "requests": 40}], [one, both])["actions"] == []


def test_a_model_too_big_for_every_node_is_named() -> None:
    tiny = _node("tiny", 4 * GB, {"huge:70b": 40 * GB})
    plan = recommend([{"model": "huge:70b", "requests": 3}], [tiny])
    assert plan["actions"][0]["kind"] == "no-room"
    assert "44.0 GB" in plan["actions"][0]["evidence"][1]


def test_sizes_below_a_gigabyte_read_in_megabytes() -> None:
    assert size_text(46_000_000) == "46 MB" and size_text(4_700_000_000) == "4.7 GB"


def test_a_models_workload_comes_from_its_capabilities_family_or_name() -> None:
    assert workload_of(["embedding"], "x") == "embed"
    assert workload_of(["completion", "tools"], "embed-ish") == "text"
    assert workload_of([], "all-minilm:latest") == "embed"  # the default model
    assert workload_of([], "granite:3b", "nomic-bert") == "embed"
    assert workload_of([], "gemma3:1b", "gemma3") == "text"
