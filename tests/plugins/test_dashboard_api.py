"""The dashboard's endpoints over real HTTP: page, events, settings, actions, benchmarks."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from herd.testing import DEFAULT_MODELS, EmulatedModel
from herd_plugins.dashboard import STATIC_DIR

FAST = "llama3.2:3b"
ADMIN = {"Authorization": "Bearer admin-key-123"}


def chat(url: str, model: str = FAST, tags: str = "", predict: int = 4, **kw: Any) -> Any:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "options": {"num_predict": predict},
    }
    headers = {"X-Herd-Tags": tags} if tags else {}
    headers.update(kw.pop("headers", {}))
    return httpx.post(f"{url}/api/chat", json=body, headers=headers, timeout=60, **kw)


def snapshots(url: str, count: int, headers: dict[str, str] | None = None) -> list[dict]:
    """The first ``count`` fleet snapshots of the events stream."""
    out: list[dict] = []
    with httpx.stream("GET", f"{url}/dashboard/events", headers=headers, timeout=20) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("data:"):
                out.append(json.loads(line[5:]))
                if len(out) == count:
                    break
    return out


def test_the_page_and_its_assets_come_from_the_package(make_sim: Any, make_router: Any) -> None:
    router = make_router(nodes=[make_sim()], auth={"api_keys": [{"name": "ci", "key": "k" * 12}]})
    page = httpx.get(f"{router.url}/dashboard")  # public even with client keys
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    # named relative to the page (so a proxy's prefix stays): favicon, style sheet, script
    assets = re.findall(r'(?:src|href)="(dashboard/static/[^"]+)"', page.text)
    assert len(assets) == 3, assets
    for href in assets:
        asset = httpx.get(f"{router.url}/{href}")
        assert asset.status_code == 200, href
    script = httpx.get(f"{router.url}/dashboard/static/js/main.js")
    assert "javascript" in script.headers["content-type"]
    assert httpx.get(f"{router.url}/dashboard/api/fleet").status_code == 401  # data is not


def test_nothing_in_the_page_points_outside_the_router() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text()
            # an SVG's namespace is a name, not a fetch
            outside = re.search(r"https?://(?!www\.w3\.org/2000/svg\b)", text)
            assert not outside, f"{path.name} names an outside URL"
            assert "import(" not in text or path.suffix != ".js"


def test_static_files_are_packaged_with_the_plugin() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"plugins/herd_plugins"' in pyproject  # hatch ships every file under it
    names = {p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert {"index.html", "dashboard.css", "js/main.js", "js/tab_overview.js"} <= names
    for path in STATIC_DIR.rglob("*.js"):
        assert len(path.read_text().splitlines()) < 400, path.name


def test_the_events_stream_shows_each_queued_and_running_request(
    make_sim: Any, make_router: Any
) -> None:
    slow = make_sim(name="slow", gen_tps=8.0, num_parallel=1)
    router = make_router(nodes=[slow], routing={"default_num_parallel": 1})
    threads = [
        threading.Thread(target=chat, args=(router.url, FAST, f"job-{i}", 24)) for i in range(2)
    ]
    for thread in threads:
        thread.start()
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and {"running", "queued"} - set(seen):
        for snapshot in snapshots(router.url, 2):
            for item in snapshot["queue"]:
                seen[item["state"]] = item
    for thread in threads:
        thread.join()
    assert seen["running"]["kind"] == "text" and seen["running"]["node"] == "slow"
    assert seen["queued"]["position"] == 1 and seen["queued"]["model"] == FAST
    assert seen["queued"]["tags"][0].startswith("job-")
    router.poll_now()
    card = snapshots(router.url, 2)[-1]["nodes"][0]  # a sample taken after the poll
    assert card["name"] == "slow" and card["state"] == "online"
    assert card["loaded"][0]["name"] == FAST


def test_settings_refuse_bad_keys_with_400_naming_them(make_sim: Any, make_router: Any) -> None:
    router = make_router(nodes=[make_sim()])
    reply = httpx.post(
        f"{router.url}/dashboard/api/settings",
        json={"auto_pull": 1, "port": 1, "nonsense": True},
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert "auto_pull" in error and "port" in error and "nonsense" in error
    assert httpx.post(f"{router.url}/dashboard/api/settings", content=b"{").status_code == 400
    assert httpx.get(f"{router.url}/dashboard/api/settings").json()["overrides"] == {}


def test_a_time_window_no_timestamp_can_hold_is_a_400(make_sim: Any, make_router: Any) -> None:
    router = make_router(nodes=[make_sim()])
    assert chat(router.url).status_code == 200
    sink = next(s for s in router.app.state.router.sinks if s.name == "duckdb")
    router.call(sink.flush())
    for query in (
        "traces?until=inf",
        "traces?since=1e300",
        "traces?since=nan",
        "series?window=custom&since=1e300&until=1e301",
        "series?window=custom&since=0&until=inf",
    ):
        reply = httpx.get(f"{router.url}/dashboard/api/{query}")
        assert reply.status_code == 400, (query, reply.text)
        assert "since" in reply.text or "until" in reply.text, (query, reply.text)
    # the latest moment allowed still reads
    reply = httpx.get(f"{router.url}/dashboard/api/traces?since=0&until=253402300799")
    assert reply.status_code == 200 and len(reply.json()["traces"]) == 1


def test_changes_need_the_admin_key_when_one_is_set(make_sim: Any, make_router: Any) -> None:
    router = make_router(nodes=[make_sim(name="n1")], auth={"admin_key": "admin-key-123"})
    url = router.url
    actions = [
        ("/dashboard/api/settings", {"auto_pull": True}),
        ("/dashboard/api/nodes/n1/pull", {"model": "x"}),
        ("/dashboard/api/benchmarks", {"model": FAST, "duration_s": 1}),
        ("/fleet/nodes/n1/drain", None),
    ]
    for path, body in actions:
        assert httpx.post(url + path, json=body).status_code == 401, path
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(url + path, json=body, headers=wrong).status_code == 401, path
    reply = httpx.post(f"{url}/dashboard/api/settings", json={"auto_pull": True}, headers=ADMIN)
    assert reply.status_code == 200
    assert reply.json()["changed"] == {"routing.auto_pull": True}
    view = httpx.get(f"{url}/dashboard/api/settings").json()
    assert view["effective"]["auth"]["admin_key"] == "********"
    assert "admin-key-123" not in json.dumps(view)


def test_a_toggle_changes_routing_at_once_and_survives_a_restart(
    make_sim: Any, make_router: Any, tmp_path: Path
) -> None:
    registry = [EmulatedModel(name="smollm:135m", size=91_000_000)]
    node = make_sim(name="n1", models=list(DEFAULT_MODELS[:1]), registry=registry)
    router = make_router(nodes=[node], data_dir=str(tmp_path))
    assert chat(router.url, "smollm:135m").status_code == 404
    reply = httpx.post(f"{router.url}/dashboard/api/settings", json={"auto_pull": True})
    assert reply.status_code == 200
    assert chat(router.url, "smollm:135m").status_code == 200
    router.stop()
    router.start()
    settings = httpx.get(f"{router.url}/dashboard/api/settings").json()
    assert settings["live"]["routing.auto_pull"] is True
    assert settings["persisted_to"] == str(tmp_path / "settings.json")


def test_health_and_recommendations_read_real_traffic(make_sim: Any, make_router: Any) -> None:
    router = make_router(nodes=[make_sim(name="n1")])
    for _ in range(3):
        assert chat(router.url, tags="app:x").status_code == 200
    sink = next(s for s in router.app.state.router.sinks if s.name == "duckdb")
    router.call(sink.flush())
    router.poll_now()
    health = httpx.get(f"{router.url}/dashboard/api/health").json()["checks"]
    by_id = {check["id"]: check for check in health}
    assert len(health) == 10 and by_id["offline"]["status"] == "ok"
    assert "3 requests" in by_id["errors"]["detail"]
    advice = httpx.get(f"{router.url}/dashboard/api/recommendations").json()
    assert advice["actions"] == [] and advice["models_seen"] == 1  # nothing to change
    series = httpx.get(f"{router.url}/dashboard/api/series?window=hour").json()
    assert sum(point["requests"] for point in series["series"]["all"]) == 3
    assert httpx.get(f"{router.url}/dashboard/api/series?window=year").status_code == 400


def test_a_benchmark_runs_and_its_result_is_kept_in_duckdb(make_sim: Any, make_router: Any) -> None:
    router = make_router(nodes=[make_sim(name="n1", gen_tps=200.0)])
    url = router.url
    spec = {"model": FAST, "duration_s": 1, "concurrency": 2, "num_predict": 8}
    started = httpx.post(f"{url}/dashboard/api/benchmarks", json=spec)
    assert started.status_code == 202
    assert httpx.post(f"{url}/dashboard/api/benchmarks", json=spec).status_code == 409
    deadline = time.monotonic() + 60  # a 1 s run; generous for a loaded 2-core machine
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/dashboard/api/benchmarks").json()
        if state["current"]["status"] != "running":
            break
        time.sleep(0.2)
    assert state["history"], state
    run = state["history"][0]
    assert run["status"] == "done" and run["requests"] > 0 and run["errors"] == 0
    assert run["nodes"] == ["n1"] and run["throughput_tps"] > 0
    assert run["p50_latency_ms"] <= run["p95_latency_ms"]
    sink = next(s for s in router.app.state.router.sinks if s.name == "duckdb")
    with sink.reader() as cursor:
        assert cursor.execute("SELECT count(*) FROM benchmark_runs").fetchone() == (1,)
    bad = httpx.post(f"{url}/dashboard/api/benchmarks", json={**spec, "concurrency": 999})
    assert bad.status_code == 400


def test_a_run_seen_ended_is_in_the_history_read_with_it(make_sim: Any, make_router: Any) -> None:
    """The page stops asking once a run has ended: the answer that says so must already
    hold the run in its history, even when the run ends while the history is being read
    (a race a loaded machine once hit: the page then never showed the stopped run)."""
    router = make_router(nodes=[make_sim(name="n1")])
    runner = router.app.state.dashboard_bench
    run = {"id": "r1", "status": "running", "started_at": time.time(), "duration_s": 10.0}
    runner.current = run

    def history_read_as_the_run_ends(sink: Any) -> list[dict[str, Any]]:
        run["status"] = "stopped"  # saved and ended just after this read began
        return []

    runner.history = history_read_as_the_run_ends
    state = httpx.get(f"{router.url}/dashboard/api/benchmarks").json()
    ids = [r["id"] for r in state["history"]]
    assert state["current"]["status"] == "running" or "r1" in ids, state


def test_a_pull_from_the_dashboard_lands_on_the_node(make_sim: Any, make_router: Any) -> None:
    registry = [EmulatedModel(name="smollm:135m", size=91_000_000)]
    router = make_router(nodes=[make_sim(name="n1", registry=registry)])
    reply = httpx.post(f"{router.url}/dashboard/api/nodes/n1/pull", json={"model": "smollm:135m"})
    assert reply.status_code == 202
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pulls = httpx.get(f"{router.url}/dashboard/api/fleet").json()["pulls"]
        if pulls and pulls[0]["status"] != "pulling":
            break
        time.sleep(0.2)
    assert pulls[0]["status"] == "done"
    assert "smollm:135m" in router.app.state.router.node("n1").models
    missing = httpx.post(f"{router.url}/dashboard/api/nodes/zz/pull", json={"model": "a"})
    assert missing.status_code == 404
