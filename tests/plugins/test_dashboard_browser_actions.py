"""The operator's dashboard in Chromium: request log filters, a benchmark stopped by a 400,
a pull with live progress, a confirmed delete, hover values on a chart, a narrow screen.

Marked ``browser`` (see :mod:`dashboard_browser`); every page is served under a strict
Content-Security-Policy and must log no console error. Screenshots go to
``test-artifacts/dashboard/`` (CI keeps them as artifacts; not committed).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from dashboard_browser import ARTIFACTS, PageProblems, browser, strict_csp
from herd.testing import DEFAULT_MODELS, EmulatedModel, SimConfig, SimNode
from herd.testing.router_runner import RouterHandle

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the shared Chromium fixture

FAST, SLOW, EMBED = "llama3.2:3b", "qwen3:4b", "nomic-embed-text:latest"
SPARE = EmulatedModel(name="tinyllama:1b", size=637_000_000)
PULLED = EmulatedModel(name="smollm:135m", size=91_000_000)
SHOTS = ARTIFACTS / "dashboard"


def _models(*names: str) -> list[EmulatedModel]:
    return [m for m in DEFAULT_MODELS if m.name in names]


@pytest.fixture(scope="module")
def fleet() -> Iterator[list[SimNode]]:
    config = SimConfig(
        name="gpu-a",
        models=[*_models(FAST, EMBED), SPARE],
        registry=[PULLED],
        pull_seconds_per_gb=40.0,  # about 3.6 s for the 91 MB model: progress to watch
    )
    nodes = [
        SimNode(config).start(),
        SimNode(SimConfig(name="gpu-b", models=_models(SLOW), gen_tps=40.0)).start(),
    ]
    yield nodes
    for node in nodes:
        node.stop()


def _chat(url: str, model: str, tags: str = "") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    body["options"] = {"num_predict": 4}
    return httpx.post(f"{url}/api/chat", json=body, headers={"X-Herd-Tags": tags}, timeout=60)


@pytest.fixture(scope="module")
def router(fleet: list[SimNode], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    nodes = [{"name": n.name, "url": n.url} for n in fleet]
    handle = RouterHandle(nodes=nodes, data_dir=str(tmp_path_factory.mktemp("ops"))).start()
    for index in range(6):
        assert _chat(handle.url, FAST, f"app:{'web' if index % 2 else 'cli'}").status_code == 200
    assert _chat(handle.url, SLOW, "app:web").status_code == 200
    assert _chat(handle.url, "no-such-model:1b").status_code == 404
    embed = {"model": "nomic-embed-text", "input": ["a", "b"]}
    assert httpx.post(f"{handle.url}/api/embed", json=embed, timeout=30).status_code == 200
    _flush(handle)
    yield handle
    handle.stop()


def _flush(handle: Any) -> None:
    sink = next(s for s in handle.app.state.router.sinks if s.name == "duckdb")
    handle.call(sink.flush())


@pytest.fixture
def page(browser: Any, router: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    strict_csp(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.problems = PageProblems(page)
    page.goto(f"{router.url}/dashboard#overview")
    page.wait_for_selector("#tab-overview article.card")
    yield page
    context.close()
    assert page.problems.errors == []


def _until(page: Any, check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``check`` from Python (a strict CSP forbids Playwright's string predicates)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(100)


def _count(page: Any, n: int) -> None:
    _until(page, lambda: _rows(page).count() == n)


def _tab(page: Any, name: str) -> None:
    page.click(f'#tabs a[data-tab="{name}"]')
    page.wait_for_selector(f"#tab-{name}[data-loaded]")


def _rows(page: Any) -> Any:
    return page.locator("#tab-requests tbody tr[data-id]")


def test_requests_filter_on_the_server_and_open_the_whole_trace(page: Any) -> None:
    _tab(page, "requests")
    page.wait_for_selector(
        "#tab-requests select[name=status] option >> text=rejected", state="attached"
    )
    assert _rows(page).count() >= 9
    with page.expect_response(lambda r: "status=rejected" in r.url):
        page.select_option("#tab-requests select[name=status]", "rejected")
    _count(page, 1)
    assert _rows(page).first.get_attribute("data-status") == "rejected"
    assert "no-such-model:1b" in _rows(page).first.inner_text()
    page.click("#tab-requests .clear")
    with page.expect_response(lambda r: "tag=app%3Aweb" in r.url):
        page.select_option("#tab-requests select[name=tag]", "app:web")
    _count(page, 4)
    with page.expect_response(lambda r: "node=gpu-b" in r.url):
        page.select_option("#tab-requests select[name=node]", "gpu-b")
    _count(page, 1)
    assert SLOW in _rows(page).first.inner_text()
    with page.expect_response(lambda r: "since=" in r.url):
        page.click('#tab-requests .range button[data-value="hour"]')
    _rows(page).first.click()
    detail = page.locator("#tab-requests .trace")
    detail.wait_for(state="visible")
    text = detail.inner_text()
    for heading in (
        "Attempts",
        "Scores per signal",
        "Notes",
        "queue wait",
        "TTFT",
        "tokens in / out",
    ):
        assert heading in text, heading
    assert "gpu-b" in detail.locator("table").first.inner_text()
    page.screenshot(path=str(SHOTS / "requests-filtered.png"), full_page=True)


def test_a_benchmark_offers_fitting_models_uses_the_typed_one_and_stops_on_a_400(
    page: Any, router: Any, fleet: list[SimNode]
) -> None:
    _tab(page, "benchmarks")
    form = page.locator("#tab-benchmarks form")
    options = form.locator("select[name=model] option").all_inner_texts()
    assert FAST in options and SLOW in options and EMBED not in options
    form.locator("select[name=workload]").select_option("embed")
    models = form.locator("select[name=model] option")
    _until(page, lambda: models.all_inner_texts() == [EMBED])
    form.locator("select[name=workload]").select_option("chat")
    for node in fleet:  # every request is now refused by the node as the client's mistake
        body = {"count": 10_000, "status": 400, "error": "invalid option num_predict"}
        assert httpx.post(f"{node.url}/_sim/fail", json=body).status_code == 200
    try:
        form.locator("select[name=model]").select_option(FAST)
        form.locator("input[name=other]").fill(SLOW)  # typed: wins over the list
        form.locator("input[name=duration]").fill("60")
        form.locator("input[name=concurrency]").fill("2")
        form.locator("button.primary").click()
        reason = page.locator("#tab-benchmarks .stop-reason")
        reason.wait_for(state="visible", timeout=20_000)
        page.wait_for_selector('#tab-benchmarks tr[data-run][data-status="stopped"]')
        assert "first client error, HTTP 400" in reason.inner_text()
        run = httpx.get(f"{router.url}/dashboard/api/benchmarks").json()["history"][0]
        assert run["model"] == SLOW and run["status"] == "stopped"
        assert run["requests"] <= 2  # one per worker at most: not thousands
        page.screenshot(path=str(SHOTS / "benchmark-stopped.png"), full_page=True)
    finally:
        for node in fleet:
            httpx.post(f"{node.url}/_sim/reset", json={})
    _flush(router)
    health = httpx.get(f"{router.url}/dashboard/api/health").json()["checks"]
    errors = next(c for c in health if c["id"] == "errors")
    assert errors["status"] == "ok"  # the benchmark's failures are not the fleet's


def test_a_pull_asks_first_then_shows_the_nodes_progress(page: Any, router: Any) -> None:
    _tab(page, "models")
    form = page.locator("#tab-models form.pull")
    form.locator("input[name=model]").fill(PULLED.name)
    form.locator("select[name=node]").select_option("gpu-a")
    form.locator("button.primary").click()
    dialog = page.locator("dialog#confirm")
    dialog.wait_for(state="visible")
    assert "Pull smollm:135m onto gpu-a?" in dialog.inner_text()
    dialog.locator("button.ok").click()
    bar = page.locator('#tab-models .pull-progress[data-pull="gpu-a/smollm:135m"]')
    progress = bar.locator("[role=progressbar]")

    def moving() -> bool:
        if not bar.count() or bar.get_attribute("data-status") != "pulling":
            return False
        return int(progress.get_attribute("aria-valuenow") or 0) > 0

    _until(page, moving)
    assert " of 91 MB" in bar.inner_text()
    page.screenshot(path=str(SHOTS / "pull-progress.png"), full_page=True)
    page.wait_for_selector(
        '#tab-models .pull-progress[data-pull="gpu-a/smollm:135m"][data-status="done"]',
        timeout=30_000,
    )
    assert "smollm:135m" in router.app.state.router.node("gpu-a").models


def test_a_delete_is_confirmed_then_done_and_logged(page: Any, router: Any) -> None:
    _tab(page, "models")
    row = page.locator('#tab-models .places tr[data-node="gpu-a"][data-model="tinyllama:1b"]')
    row.locator('button[data-act="delete"]').click()
    dialog = page.locator("dialog#confirm")
    dialog.wait_for(state="visible")
    dialog.locator('button[value="cancel"]').click()
    assert "tinyllama:1b" in router.app.state.router.node("gpu-a").models  # cancelled
    row.locator('button[data-act="delete"]').click()
    assert "Delete tinyllama:1b from gpu-a?" in dialog.inner_text()
    dialog.locator("button.ok").click()
    row.wait_for(state="detached")
    assert "tinyllama:1b" not in router.app.state.router.node("gpu-a").models
    _flush(router)
    _tab(page, "requests")
    with page.expect_response(lambda r: "kind=action" in r.url):
        page.select_option("#tab-requests select[name=kind]", "action")
    page.wait_for_selector("#tab-requests tbody tr[data-id] >> text=tinyllama:1b")
    assert "delete" in _rows(page).first.inner_text()


def test_a_chart_shows_values_and_a_crosshair_on_hover(page: Any) -> None:
    _tab(page, "trends")
    chart = page.locator("#tab-trends .chart-panel").first
    svg = chart.locator("svg")
    box = svg.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 14, box["y"] + box["height"] / 2)
    tip = chart.locator(".tip")
    tip.wait_for(state="visible")
    assert "requests" in tip.inner_text() or "request" in tip.inner_text()
    assert chart.locator(".crosshair").get_attribute("visibility") == "visible"
    page.screenshot(path=str(SHOTS / "chart-hover.png"))
    page.mouse.move(box["x"] - 50, box["y"] - 50)
    tip.wait_for(state="hidden")


def test_on_a_narrow_screen_the_tab_bar_scrolls(browser: Any, router: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    strict_csp(context)
    page = context.new_page()
    problems = PageProblems(page)
    try:
        page.goto(f"{router.url}/dashboard#settings")
        page.wait_for_selector("#tab-settings[data-loaded]")
        tabs = page.locator("#tabs")
        assert tabs.evaluate("el => el.scrollWidth > el.clientWidth")
        assert tabs.evaluate("el => el.scrollLeft > 0")  # the chosen tab was scrolled into view
        assert page.locator('#tabs a[data-tab="settings"]').is_visible()
        page.screenshot(path=str(SHOTS / "narrow.png"))
    finally:
        context.close()
    assert problems.errors == []


@contextlib.contextmanager
def own_router_page(
    browser: Any, fleet: list[SimNode], tmp_path: Any, **settings: Any
) -> Iterator[tuple[Any, Any, PageProblems]]:
    """A router of its own (``settings`` on top of the fleet) and a page for it; both
    closed after. Yields the router's handle, the page and the page's problems."""
    nodes = [{"name": n.name, "url": n.url} for n in fleet]
    handle = RouterHandle(nodes=nodes, data_dir=str(tmp_path), **settings).start()
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    strict_csp(context)
    page = context.new_page()
    try:
        yield handle, page, PageProblems(page)
    finally:
        context.close()
        handle.stop()


def test_without_the_trace_store_the_page_says_traces_are_off(
    browser: Any, fleet: list[SimNode], tmp_path: Any
) -> None:
    off = {"disable": ["sink-duckdb"]}
    with own_router_page(browser, fleet, tmp_path, plugins=off) as (handle, page, problems):
        page.goto(f"{handle.url}/dashboard#requests")
        page.locator("#traces-off").wait_for(state="visible")
        for tab in ("trends", "models", "apps"):
            page.click(f'#tabs a[data-tab="{tab}"]')
        page.click('#tabs a[data-tab="health"]')
        page.wait_for_selector("#tab-health[data-loaded]")
        assert "The trace store is off" in page.inner_text("#tab-health")
        page.click('#tabs a[data-tab="overview"]')
        page.wait_for_selector("#tab-overview article.card")  # the live view still works
        page.screenshot(path=str(SHOTS / "traces-off.png"))
    assert problems.errors == []  # no 503 was even asked for


def test_a_router_with_api_keys_asks_for_one_plainly_and_works_once_it_is_given(
    browser: Any, fleet: list[SimNode], tmp_path: Any
) -> None:
    key = "dash-key-" + "k" * 12
    auth = {"api_keys": [{"name": "me", "key": key}]}
    with own_router_page(browser, fleet, tmp_path, auth=auth) as (handle, page, problems):
        page.goto(f"{handle.url}/dashboard#overview")
        banner = page.locator("#needs-key")
        banner.wait_for(state="visible")
        assert "needs an API key" in banner.inner_text()
        banner.locator('a[href="#settings"]').click()
        page.fill('form.access input[name="api"]', key)  # the form is there without a key
        page.click("form.access button")
        page.wait_for_selector("#tab-settings[data-loaded]")  # and the tab loads with one
        banner.wait_for(state="hidden", timeout=20_000)  # the next reconnect carries the key
        page.click('#tabs a[data-tab="overview"]')
        page.wait_for_selector("#tab-overview article.card", timeout=20_000)
        page.screenshot(path=str(SHOTS / "needs-key.png"))
    # before the key, the refusals were 401s, and only those
    assert all("401" in problem for problem in problems.errors), problems.errors
