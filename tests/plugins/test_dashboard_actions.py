"""Model actions, safe benchmarks, and a dashboard that owns its API, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
from herd.testing import EmulatedModel

FAST, EMBED = "llama3.2:3b", "nomic-embed-text:latest"
ADMIN = {"Authorization": "Bearer admin-key-123"}


def _flush(router: Any) -> None:
    sink = next(s for s in router.app.state.router.sinks if s.name == "duckdb")
    router.call(sink.flush())


def _wait_bench(url: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/dashboard/api/benchmarks", headers=ADMIN).json()
        if state["current"] and state["current"]["status"] != "running":
            return state
        time.sleep(0.2)
    raise AssertionError("the benchmark did not finish")


def _traces(url: str, **params: Any) -> list[dict[str, Any]]:
    reply = httpx.get(f"{url}/dashboard/api/traces", params=params, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    return reply.json()["traces"]


def test_disabling_the_dashboard_removes_its_api(make_sim: Any, make_router: Any) -> None:
    router = make_router(nodes=[make_sim()], plugins={"disable": ["dashboard"]})
    for path in ("/dashboard", "/dashboard/api/traces", "/dashboard/api/overview"):
        assert httpx.get(router.url + path).status_code == 404, path


def test_without_the_duckdb_sink_the_dashboard_says_traces_are_off(
    make_sim: Any, make_router: Any
) -> None:
    router = make_router(nodes=[make_sim()], plugins={"disable": ["sink-duckdb"]})
    url = router.url
    assert httpx.get(f"{url}/dashboard").status_code == 200
    assert httpx.get(f"{url}/dashboard/api/store").json() == {"traces": False}
    for path in ("traces", "overview", "series", "models", "apps"):
        reply = httpx.get(f"{url}/dashboard/api/{path}")
        assert reply.status_code == 503, path
        assert "traces are off" in reply.text
    health = httpx.get(f"{url}/dashboard/api/health").json()
    assert health["traces"] is False
    assert {c["id"]: c["status"] for c in health["checks"]}["errors"] == "unknown"
    assert httpx.get(f"{url}/dashboard/api/fleet").json()["nodes"]  # the live view still works


def test_actions_need_the_admin_key_and_name_bad_input(make_sim: Any, make_router: Any) -> None:
    router = make_router(nodes=[make_sim(name="n1")], auth={"admin_key": "admin-key-123"})
    url = router.url
    for verb in ("pull", "delete", "unload"):
        path = f"{url}/dashboard/api/nodes/n1/{verb}"
        assert httpx.post(path, json={"model": FAST}).status_code == 401
        assert httpx.post(path, json={}, headers=ADMIN).status_code == 400
        missing = httpx.post(
            f"{url}/dashboard/api/nodes/zz/{verb}", json={"model": FAST}, headers=ADMIN
        )
        assert missing.status_code == 404 and "n1" in missing.json()["error"]
    gone = httpx.post(
        f"{url}/dashboard/api/nodes/n1/delete", json={"model": "zz:1b"}, headers=ADMIN
    )
    assert gone.status_code == 404  # the node's own answer, in the client's protocol
    # ... the asker's mistake, not the node's failure: rejected in the trace, and no request
    # in the metrics
    _flush(router)
    (trace,) = _traces(url, kind="action")
    assert (trace["endpoint"], trace["status"], trace["http_status"]) == ("delete", "rejected", 404)
    metrics = httpx.get(f"{url}/metrics").text
    assert 'status="failed"' not in metrics and 'model="zz:1b"' not in metrics


def test_unload_delete_and_pull_act_on_the_node_and_leave_action_traces(
    make_sim: Any, make_router: Any
) -> None:
    registry = [EmulatedModel(name="smollm:135m", size=91_000_000)]
    node = make_sim(name="n1", registry=registry, pull_seconds_per_gb=20.0)
    router = make_router(nodes=[node], auth={"admin_key": "admin-key-123"})
    url, view = router.url, router.app.state.router
    body = {"model": FAST, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    assert httpx.post(f"{url}/api/chat", json=body, headers=ADMIN, timeout=30).status_code == 200
    router.poll_now()
    assert FAST in view.node("n1").loaded
    reply = httpx.post(f"{url}/dashboard/api/nodes/n1/unload", json={"model": FAST}, headers=ADMIN)
    assert reply.status_code == 200 and FAST not in view.node("n1").loaded
    reply = httpx.post(f"{url}/dashboard/api/nodes/n1/delete", json={"model": FAST}, headers=ADMIN)
    assert reply.status_code == 200 and FAST not in view.node("n1").models
    started = httpx.post(
        f"{url}/dashboard/api/nodes/n1/pull", json={"model": "smollm:135m"}, headers=ADMIN
    )
    assert started.status_code == 202
    again = httpx.post(
        f"{url}/dashboard/api/nodes/n1/pull", json={"model": "smollm:135m"}, headers=ADMIN
    )
    assert again.status_code == 409
    progress: list[tuple[int, int]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pull = httpx.get(f"{url}/dashboard/api/pulls", headers=ADMIN).json()[0]
        progress.append((pull["completed"], pull["total"]))
        if pull["status"] != "pulling":
            break
        time.sleep(0.1)
    assert pull["status"] == "done" and pull["total"] == 91_000_000
    assert any(0 < done < total for done, total in progress)  # seen part way
    assert "smollm:135m" in view.node("n1").models
    _flush(router)
    actions = _traces(url, kind="action")
    assert [(t["endpoint"], t["model"], t["status"]) for t in actions] == [
        ("pull", "smollm:135m", "completed"),
        ("delete", FAST, "completed"),
        ("unload", FAST, "completed"),
    ]
    assert {t["api_key"] for t in actions} == {"admin"}
    overview = httpx.get(f"{url}/dashboard/api/overview", headers=ADMIN).json()
    assert overview["hour"]["requests"] == 1  # actions are not traffic


def test_a_benchmark_refuses_a_model_that_cannot_serve_the_workload(
    make_sim: Any, make_router: Any
) -> None:
    router = make_router(nodes=[make_sim(name="n1")])
    url = f"{router.url}/dashboard/api/benchmarks"
    embed_as_chat = httpx.post(url, json={"model": EMBED, "duration_s": 1})
    assert embed_as_chat.status_code == 400 and "embed workload" in embed_as_chat.json()["error"]
    unknown = httpx.post(url, json={"model": "gemma3:1b", "duration_s": 1})
    assert unknown.status_code == 400 and "no online node has gemma3:1b" in unknown.json()["error"]
    chat_as_embed = httpx.post(url, json={"model": FAST, "workload": "embed", "duration_s": 1})
    assert chat_as_embed.status_code == 400


def test_a_benchmark_stops_at_the_error_share_and_stays_out_of_the_rates(
    make_sim: Any, make_router: Any
) -> None:
    node = make_sim(name="n1")
    router = make_router(
        nodes=[node],
        auth={"admin_key": "admin-key-123", "api_keys": [{"name": "first", "key": "k" * 16}]},
    )
    url = router.url
    assert httpx.post(f"{node.url}/_sim/fail", json={"count": 100_000, "status": 500}).is_success
    spec = {"model": FAST, "duration_s": 60, "concurrency": 1, "max_error_share": 0.5}
    assert (
        httpx.post(f"{url}/dashboard/api/benchmarks", json=spec, headers=ADMIN).status_code == 202
    )
    run = _wait_bench(url)["history"][0]
    assert run["status"] == "stopped" and run["requests"] == 10
    assert "10 of 10 requests failed" in run["error"] and "limit is 50%" in run["error"]
    _flush(router)
    traced = _traces(url, tag="source:dashboard-bench")
    assert len(traced) == 10 and {t["api_key"] for t in traced} == {"admin"}
    assert all(f"bench:{run['id']}" in t["tags"] for t in traced)
    health = httpx.get(f"{url}/dashboard/api/health", headers=ADMIN).json()["checks"]
    assert "0 requests" in next(c for c in health if c["id"] == "errors")["detail"]
    with_bench = httpx.get(f"{url}/dashboard/api/health?bench=true", headers=ADMIN).json()
    assert next(c for c in with_bench["checks"] if c["id"] == "errors")["status"] == "bad"
    series = httpx.get(f"{url}/dashboard/api/series", headers=ADMIN).json()
    assert series["totals"]["requests"] == 0
