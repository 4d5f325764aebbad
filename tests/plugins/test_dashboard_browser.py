"""The dashboard in a real headless Chromium, in front of a router and emulated nodes.

Marked ``browser``: skipped where Chromium or Playwright is missing, unless
``HERD_REQUIRE_BROWSER=1`` (CI) makes that a failure. Screenshots of every tab go to
``test-artifacts/dashboard/`` (not committed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashboard_browser import ARTIFACTS, PageProblems, browser, strict_csp
from herd.testing import DEFAULT_MODELS, EmulatedModel, SimConfig, SimNode
from herd.testing.router_runner import RouterHandle

from tests.reliability.proxy_servers import nginx

pytestmark = pytest.mark.browser
__all__ = ["browser", "nginx"]  # the shared Chromium fixture; a real nginx

TABS = (
    "overview",
    "requests",
    "trends",
    "models",
    "apps",
    "benchmarks",
    "health",
    "recommendations",
)
FAST, SLOW = "llama3.2:3b", "qwen3:4b"
REGISTRY = [
    EmulatedModel(name="smollm:135m", size=91_000_000),
    EmulatedModel(name="tinyllama:1b", size=637_000_000),
]
MAX_FIRST_LOAD = 300 * 1024


def _models(*names: str) -> list[EmulatedModel]:
    return [m for m in DEFAULT_MODELS if m.name in names]


@pytest.fixture(scope="module")
def fleet() -> Iterator[list[SimNode]]:
    fast = SimNode(
        SimConfig(name="gpu-a", models=_models(FAST, "nomic-embed-text:latest"), registry=REGISTRY)
    ).start()
    # both pull from the same registry, as real nodes do: auto-pull may place on either
    slow = SimNode(
        SimConfig(name="gpu-b", models=_models(SLOW), gen_tps=6.0, registry=REGISTRY)
    ).start()
    yield [fast, slow]
    fast.stop()
    slow.stop()


def _router(fleet: list[SimNode], data_dir: str, **settings: Any) -> RouterHandle:
    nodes = [{"name": n.name, "url": n.url} for n in fleet]
    return RouterHandle(nodes=nodes, data_dir=data_dir, **settings).start()


def _chat(url: str, model: str, tags: str = "", predict: int = 8) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "stream": False,
        "options": {"num_predict": predict},
    }
    return httpx.post(f"{url}/api/chat", json=body, headers={"X-Herd-Tags": tags}, timeout=60)


@pytest.fixture(scope="module")
def router(
    fleet: list[SimNode], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterHandle]:
    handle = _router(fleet, str(tmp_path_factory.mktemp("dashboard")))
    url = handle.url
    for index in range(10):
        assert _chat(url, FAST, tags=f"app:{'chat' if index % 3 else 'batch'}").status_code == 200
    embed = {"model": "nomic-embed-text", "input": ["one", "two"]}
    assert httpx.post(f"{url}/api/embed", json=embed, timeout=30).status_code == 200
    assert _chat(url, "no-such-model:1b").status_code == 404  # an error for the charts
    threads = [threading.Thread(target=_chat, args=(url, SLOW, "app:slow", 3)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink = next(s for s in handle.app.state.router.sinks if s.name == "duckdb")
    handle.call(sink.flush())
    handle.poll_now()  # the cards show what the nodes have loaded now
    yield handle
    handle.stop()


def _page(browser: Any, url: str, hash_: str = "overview") -> tuple[Any, Any, PageProblems]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    strict_csp(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems = PageProblems(page)
    page.goto(f"{url}/dashboard#{hash_}")
    return context, page, problems


def test_every_tab_renders_real_data_without_console_errors(
    browser: Any, router: RouterHandle
) -> None:
    shots = ARTIFACTS / "dashboard"
    shots.mkdir(parents=True, exist_ok=True)
    context, page, problems = _page(browser, router.url)
    try:
        page.wait_for_selector('#tab-overview article.card[data-node="gpu-a"]')
        # The live snapshot is sampled once a second: wait for one taken after the poll.
        page.wait_for_selector(f'article.card[data-node="gpu-a"] span[title="{FAST}"]')
        assert page.locator("#tab-overview article.card").count() == 2
        assert "llama3.2:3b" in page.inner_text('article.card[data-node="gpu-a"]')
        page.screenshot(path=str(shots / "overview.png"), full_page=True)
        for tab in TABS[1:]:
            page.click(f'#tabs a[data-tab="{tab}"]')
            page.wait_for_selector(f"#tab-{tab}[data-loaded]")
            page.screenshot(path=str(shots / f"{tab}.png"), full_page=True)
        trends = page.locator("#tab-trends")
        assert trends.locator("svg rect").count() > 0  # request bars
        assert trends.locator("svg path").count() >= 3  # latency, TTFT, tokens/s lines
        assert page.locator('#tab-models .usage tr[data-model="llama3.2:3b"]').count() == 1
        assert page.locator('#tab-apps tr[data-app="app:chat"]').count() == 1
        assert "app:slow" in page.inner_text("#tab-apps")
        assert page.locator("#tab-apps .daily svg line.tick").count() == 7  # no day dropped
        assert page.locator("#tab-health .check").count() == 10
        assert page.locator('#tab-health [data-check="offline"][data-status="ok"]').count() == 1
        assert page.locator("#tab-requests tr[data-id]").count() >= 13
        page.click('#tabs a[data-tab="benchmarks"]')
        page.select_option("#tab-benchmarks select[name=model]", FAST)
        page.fill("#tab-benchmarks input[name=duration]", "1")
        page.click("#tab-benchmarks form button.primary")
        page.wait_for_selector("#tab-benchmarks tr[data-run]", timeout=15_000)
        assert FAST in page.inner_text("#tab-benchmarks tbody")
        page.screenshot(path=str(shots / "benchmarks.png"), full_page=True)
        page.click('#tabs a[data-tab="settings"]')
        page.wait_for_selector("#tab-settings[data-loaded]")
        assert page.locator('#tab-settings input[data-weight="queue-depth"]').count() == 1
        page.screenshot(path=str(shots / "settings.png"), full_page=True)
    finally:
        context.close()
    assert problems.errors == []


def test_a_request_shows_in_the_queue_with_its_badge_and_leaves_when_done(
    browser: Any, router: RouterHandle
) -> None:
    context, page, problems = _page(browser, router.url)
    try:
        page.wait_for_selector('#tab-overview article.card[data-node="gpu-b"]')
        done: list[int] = []
        thread = threading.Thread(
            target=lambda: done.append(_chat(router.url, SLOW, "probe-7", 18).status_code)
        )
        thread.start()
        row = page.locator("#tab-overview tr[data-request]", has_text="probe-7")
        row.wait_for(state="visible")
        assert row.locator(".badge").inner_text() == "[TEXT]"
        assert "gpu-b" in row.inner_text() and SLOW in row.inner_text()
        thread.join(timeout=30)
        assert done == [200]
        row.wait_for(state="detached")
    finally:
        context.close()
    assert problems.errors == []


@pytest.mark.proxy
def test_the_dashboard_works_behind_a_proxy_that_serves_herd_under_a_prefix(
    browser: Any, router: RouterHandle, nginx: Any
) -> None:
    """nginx serves herd at /herd/ (the prefix stripped): the page, its files, its API and
    its live events all keep the prefix, and .../dashboard/ is sent to .../dashboard."""

    def servers(port: int) -> str:
        return (
            f"  server {{ listen 127.0.0.1:{port};\n"
            f"    location /herd/ {{ proxy_pass http://127.0.0.1:{router.port}/; }} }}"
        )

    proxy = nginx(servers=servers)
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    strict_csp(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems = PageProblems(page)
    try:
        page.goto(f"{proxy.url}/herd/dashboard/#requests")
        assert page.url == f"{proxy.url}/herd/dashboard#requests"
        page.wait_for_selector("#tab-requests[data-loaded]")
        assert page.locator("#tab-requests tr[data-id]").count() >= 13  # the API, prefixed
        page.click('#tabs a[data-tab="overview"]')
        page.wait_for_selector('#tab-overview article.card[data-node="gpu-a"]')  # live events
        page.click('#tabs a[data-tab="apps"]')
        page.wait_for_selector("#tab-apps[data-loaded]")
        # the examples give clients the router's address as they reach it: with the prefix
        assert f"{proxy.url}/herd/api/chat" in page.inner_text("#tab-apps")
    finally:
        context.close()
    assert problems.errors == []


def test_first_load_transfers_less_than_300_kb(browser: Any, router: RouterHandle) -> None:
    context = browser.new_context()
    page = context.new_page()
    sizes: dict[str, int] = {}

    def finished(request: Any) -> None:
        if "/dashboard/events" not in request.url:
            size = request.sizes()
            sizes[request.url] = size["responseBodySize"] + size["responseHeadersSize"]

    page.on("requestfinished", finished)
    try:
        page.goto(f"{router.url}/dashboard")
        page.wait_for_selector("#tab-overview article.card")
        page.wait_for_load_state("load")
    finally:
        context.close()
    total = sum(sizes.values())
    print(f"dashboard first load: {len(sizes)} requests, {total / 1024:.1f} KB")
    assert all(url.startswith(router.url) for url in sizes)
    assert any(url.endswith("/main.js") for url in sizes)
    assert 0 < total < MAX_FIRST_LOAD


def test_a_settings_toggle_changes_routing_and_survives_a_restart(
    browser: Any, fleet: list[SimNode], tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = str(tmp_path_factory.mktemp("dashboard-restart"))
    handle = _router(fleet, data_dir)
    try:
        assert _chat(handle.url, "smollm:135m").status_code == 404  # auto_pull is off
        context, page, problems = _page(browser, handle.url, "settings")
        try:
            box = page.locator('#tab-settings input[data-key="routing.auto_pull"]')
            box.wait_for()
            assert not box.is_checked()
            box.check()
            page.wait_for_selector('#tab-settings tr[data-override="routing.auto_pull"]')
        finally:
            context.close()
        assert problems.errors == []
        reply = _chat(handle.url, "smollm:135m")
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-herd-node"] in ("gpu-a", "gpu-b")
        handle.stop()
        handle.start()  # same port, same data_dir: a restarted router
        assert handle.app.state.router.settings.routing.auto_pull is True
        context, page, problems = _page(browser, handle.url, "settings")
        try:
            box = page.locator('#tab-settings input[data-key="routing.auto_pull"]')
            box.wait_for()
            assert box.is_checked()
        finally:
            context.close()
        assert problems.errors == []
        started = time.monotonic()
        assert _chat(handle.url, "tinyllama:1b").status_code == 200  # pulled again
        assert time.monotonic() - started < 30
    finally:
        handle.stop()


def test_a_card_names_the_server_each_node_runs(
    browser: Any, fleet: list[SimNode], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An Ollama node's card says its Ollama version; an OpenAI-type node's says what it
    is (it read "Ollama openai", the version such a node reports)."""
    with SimNode(SimConfig(name="vllm", api="openai", models=_models(FAST))) as server:
        nodes = [
            {"name": "gpu-a", "url": fleet[0].url},
            {"name": "vllm", "url": server.url, "type": "openai"},
        ]
        handle = RouterHandle(
            nodes=nodes, data_dir=str(tmp_path_factory.mktemp("dashboard-kinds"))
        ).start()
        try:
            context, page, problems = _page(browser, handle.url)
            try:
                card = 'article.card[data-node="{}"] header + div.muted.small'
                page.wait_for_selector(card.format("vllm"))
                assert "OpenAI-compatible server" in page.inner_text(card.format("vllm"))
                assert "Ollama" not in page.inner_text(card.format("vllm"))
                assert "Ollama 0." in page.inner_text(card.format("gpu-a"))
            finally:
                context.close()
            assert problems.errors == []
        finally:
            handle.stop()
