"""How fast the dashboard's overview renders a big fleet: 50 nodes, 200 queued requests.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_dashboard.py [--nodes 50 --queued 200]

Starts a router and a few emulated Ollama nodes (herd-sim, in this process) on 127.0.0.1,
registers ``--nodes`` nodes through agent heartbeats (with CPU, RAM, VRAM and GPU
temperature, one slot each, spread over the emulated servers), then holds ``--nodes`` +
``--queued`` slow streaming chats open so that every node runs one and the rest wait in
the router's queues. Headless Chromium (Debian's ``chromium``) then opens /dashboard and
reports: time from navigation to the first complete overview (all cards, the whole queue),
and how long each live redraw takes. Every wait is bounded; everything stops at the end.

``--docs DIR`` instead writes the screenshots of docs/dashboard.md from a small fleet,
after backfilling an hour of traces so the charts have a shape.

``--traces N`` instead measures the Requests tab's log on a big store: N traces (default
a million) inserted through the DuckDB sink's own batch insert into a file, then the
first page, a filtered page, a page deep down (by cursor) and the match count, each timed
as the median of several runs. No browser needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from herd.testing import EmulatedModel, SimConfig, SimNode
from herd.testing.router_runner import RouterHandle
from herd.trace import AttemptRecord, RequestTrace

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "plugins"))
from dashboard_browser import browser_missing, launch

GB = 1_000_000_000
MODELS = ["llama3.2:3b", "qwen3:4b", "qwen2.5:7b"]
SERVERS = 5  # emulated Ollama servers behind the registered nodes
TIMEOUT_S = 60.0


def heartbeat(index: int, url: str, seed: random.Random) -> dict[str, Any]:
    gpus = [
        {
            "index": 0,
            "name": "RTX 4090",
            "vram_total": 24 * GB,
            "vram_used": int(seed.uniform(4, 21) * GB),
            "temperature": round(seed.uniform(48, 83)),
        }
    ]
    loaded = [{"name": MODELS[0], "size": 3 * GB, "size_vram": 3 * GB, "context_length": 8192}]
    if index % 3 == 0:
        loaded.append({"name": MODELS[1], "size": 4 * GB, "size_vram": 4 * GB})
    return {
        "name": f"node-{index:02d}",
        "ollama_url": url,
        "interval": 120.0,
        "ollama_version": "0.12.6",
        "models": [{"name": m, "size": (2 + i) * GB} for i, m in enumerate(MODELS)],
        "loaded": loaded,
        "num_parallel": 1,
        "machine": {
            "cpu_count": 16,
            "cpu_percent": round(seed.uniform(5, 95), 1),
            "ram_total": 64 * GB,
            "ram_available": int(seed.uniform(8, 50) * GB),
            "gpus": gpus,
        },
    }


@contextlib.contextmanager
def fleet(nodes: int, gen_tps: float) -> Iterator[RouterHandle]:
    sims = [
        SimNode(
            SimConfig(
                name=f"sim{i}",
                gen_tps=gen_tps,
                num_parallel=256,
                registry=[EmulatedModel(name="smollm:135m", size=91_000_000)],
                pull_seconds_per_gb=120.0,  # the docs picture catches a pull half way
            )
        ).start()
        for i in range(min(SERVERS, nodes))
    ]
    data = tempfile.TemporaryDirectory()
    router = RouterHandle(data_dir=data.name, log_level="warning").start()
    try:
        seed = random.Random(7)
        for index in range(nodes):
            body = heartbeat(index, sims[index % len(sims)].url, seed)
            reply = httpx.post(f"{router.url}/fleet/heartbeat", json=body, timeout=10)
            reply.raise_for_status()
        yield router
    finally:
        router.stop()
        for sim in sims:
            sim.stop()
        data.cleanup()


def hold_requests(
    url: str, count: int, stop: threading.Event, models: list[str]
) -> threading.Thread:
    """Keep ``count`` slow streaming chats open (in a thread) until ``stop`` is set."""

    async def one(session: aiohttp.ClientSession, index: int) -> None:
        body = {
            "model": models[index % len(models)],
            "messages": [{"role": "user", "content": "a long story please"}],
            "options": {"num_predict": 400},
        }
        tags = {"X-Herd-Tags": f"app:{['chat', 'batch', 'search'][index % 3]}"}
        with contextlib.suppress(aiohttp.ClientError, asyncio.CancelledError):
            async with session.post(f"{url}/api/chat", json=body, headers=tags) as reply:
                async for _ in reply.content:
                    if stop.is_set():
                        return

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S * 3)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            tasks = [asyncio.create_task(one(session, i)) for i in range(count)]
            while not stop.is_set() and not all(t.done() for t in tasks):
                await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    return thread


def wait_for_queue(url: str, want: int) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        snapshot = httpx.get(f"{url}/dashboard/api/fleet", timeout=10).json()
        if len(snapshot["queue"]) >= want:
            return snapshot
        time.sleep(0.25)
    raise TimeoutError(f"the queue never reached {want} requests")


def measure(router: RouterHandle, nodes: int, requests: int, seconds: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{router.url}/dashboard")
        page.wait_for_function(
            f"document.querySelectorAll('#tab-overview article.card').length >= {nodes} && "
            f"document.querySelectorAll('#tab-overview tr[data-request]').length >= {requests}",
            timeout=TIMEOUT_S * 1000,
        )
        first = page.evaluate("window.herdOverview.firstAt")
        samples: list[float] = []
        deadline = time.monotonic() + seconds
        seen = page.evaluate("window.herdOverview.renders")
        while time.monotonic() < deadline:
            page.wait_for_function(f"window.herdOverview.renders > {seen}", timeout=5000)
            seen, took = page.evaluate("[window.herdOverview.renders, window.herdOverview.lastMs]")
            samples.append(took)
        browser.close()
    return {"first": first, "redraws": samples}


def docs_screenshots(directory: Path) -> None:
    from playwright.sync_api import sync_playwright

    with fleet(4, gen_tps=4.0) as router:
        now, seed = time.time(), random.Random(3)
        for i in range(900):  # an hour of traffic, busier lately
            received = now - 3600 * seed.random() ** 1.6
            model = seed.choice(MODELS)
            latency = seed.uniform(400, 2500) * (1.8 if model == "qwen2.5:7b" else 1.0)
            node = f"node-{seed.randrange(4):02d}"
            failed = seed.random() < 0.02
            names = ["queue-depth", "thermal", "memory-fit", "wait-time", "availability"]
            scores = {
                f"node-{n:02d}": {name: round(seed.random(), 3) for name in names} for n in range(4)
            }
            attempts = []
            if failed:  # the first node broke mid-stream, the second one failed too
                attempts.append(
                    AttemptRecord(node, received + 0.01, received + 0.4, "node broke", 502)
                )
            attempts.append(AttemptRecord(node, received + 0.4, received + latency / 1000, "", 200))
            router.gateway.finish(
                RequestTrace(
                    request_id=f"backfill{i}",
                    api=seed.choice(["ollama", "openai"]),
                    endpoint="chat",
                    kind="text",
                    model=model,
                    served_model=model,
                    node=node,
                    status="failed" if failed else "completed",
                    http_status=502 if failed else 200,
                    error="node-0x ended the stream early" if failed else "",
                    scores=scores,
                    attempts=attempts,
                    queue_ms=seed.uniform(0, 40),
                    prompt_tokens=seed.randrange(20, 400),
                    notes=["num_ctx pinned to 8192"] if seed.random() < 0.2 else [],
                    received_at=received,
                    first_byte_at=received + latency / 5000,
                    done_at=received + latency / 1000,
                    ttft_ms=latency / 5,
                    latency_ms=latency,
                    completion_tokens=int(latency / 20),
                    tokens_per_second=seed.uniform(30, 60),
                    tags=[seed.choice(["app:chat", "app:search", "app:batch"])],
                )
            )
        sink = next(s for s in router.gateway.sinks if s.name == "duckdb")
        router.call(sink.flush())
        stop = threading.Event()
        holder = hold_requests(router.url, 12, stop, MODELS[:2])
        wait_for_queue(router.url, 12)
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{router.url}/dashboard")
            page.wait_for_selector("#tab-overview tr[data-request]")
            page.screenshot(path=str(directory / "dashboard-overview.png"))
            page.click('#tabs a[data-tab="trends"]')
            page.wait_for_selector("#tab-trends[data-loaded]")
            box = page.locator("#tab-trends .chart-panel svg").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2)
            page.screenshot(path=str(directory / "dashboard-trends.png"))
            page.click('#tabs a[data-tab="requests"]')
            page.wait_for_selector("#tab-requests[data-loaded]")
            page.select_option("#tab-requests select[name=model]", MODELS[2])
            page.select_option("#tab-requests select[name=status]", "failed")
            page.click('#tab-requests .range button[data-value="hour"]')
            page.wait_for_timeout(800)
            page.locator("#tab-requests tbody tr[data-id]").first.click()
            page.wait_for_selector("#tab-requests .trace:not([hidden])")
            page.mouse.wheel(0, -10_000)  # back to the top: the sticky tab bar stays put
            page.wait_for_timeout(400)
            page.screenshot(path=str(directory / "dashboard-requests.png"), full_page=True)
            page.click('#tabs a[data-tab="models"]')
            page.wait_for_selector("#tab-models[data-loaded]")
            page.fill("#tab-models form.pull input[name=model]", "smollm:135m")
            page.click("#tab-models form.pull button.primary")
            page.click("dialog#confirm button.ok")
            page.wait_for_selector(
                '#tab-models .pull-progress [aria-valuenow]:not([aria-valuenow="0"])'
            )
            page.wait_for_timeout(1500)
            page.screenshot(path=str(directory / "dashboard-models.png"))
            phone = browser.new_page(viewport={"width": 390, "height": 760})
            phone.goto(f"{router.url}/dashboard#health")
            phone.wait_for_selector("#tab-health[data-loaded]")
            phone.screenshot(path=str(directory / "dashboard-narrow.png"))
            browser.close()
        stop.set()
        holder.join(timeout=10)
    print(f"wrote the dashboard-*.png pictures in {directory}")


def trace_log(count: int, runs: int = 5) -> None:
    """Insert ``count`` traces through the sink's insert path; time the log's queries."""
    from herd_plugins.dashboard.requests import TraceFilter, parse_cursor, trace_page
    from herd_plugins.sink_duckdb import DuckDBSink
    from herd_plugins.sink_duckdb.schema import insert_traces

    seed, now = random.Random(7), time.time()
    with tempfile.TemporaryDirectory() as data_dir:
        sink = DuckDBSink(DuckDBSink.Config(retention_days=0), data_dir)
        sink.open()
        started = time.perf_counter()
        batch_size = sink.config.batch_size
        with sink.reader() as con:
            for first in range(0, count, batch_size):
                batch = []
                for i in range(first, min(count, first + batch_size)):
                    received = now - (count - i) * 0.5  # one every half second, oldest first
                    failed = seed.random() < 0.03
                    batch.append(
                        RequestTrace(
                            request_id=f"t{i:08d}",
                            api="ollama",
                            endpoint="chat",
                            kind="text",
                            model=MODELS[i % 3],
                            served_model=MODELS[i % 3],
                            node=f"node-{i % 20:02d}",
                            status="failed" if failed else "completed",
                            received_at=received,
                            done_at=received + 0.8,
                            latency_ms=800.0,
                            ttft_ms=120.0,
                            completion_tokens=40,
                            tags=[f"app:{('chat', 'search', 'batch', 'eval')[i % 4]}"],
                            api_key=("ci", "web", "")[i % 3],
                        )
                    )
                insert_traces(con, batch)
            inserted = time.perf_counter() - started
            print(f"inserted {count:,} traces in {inserted:.1f} s ({count / inserted:,.0f}/s)")
            rare = TraceFilter(status="failed", node="node-07", tag="app:eval")

            def timed(what: str, run: Any) -> Any:
                samples, result = [], None
                for _ in range(runs):
                    began = time.perf_counter()
                    result = run()
                    samples.append((time.perf_counter() - began) * 1000)
                print(f"{what:<52}{statistics.median(samples):>10.1f} ms", flush=True)
                return result

            print(f"{'query (median of ' + str(runs) + ')':<52}{'time':>13}")
            page = timed(
                "first page, 50 rows, no count",
                lambda: trace_page(con, TraceFilter(), limit=50, count=False),
            )
            timed(
                "first page, 50 rows, with total", lambda: trace_page(con, TraceFilter(), limit=50)
            )
            timed(
                "filtered page (model + node), no count",
                lambda: trace_page(
                    con, TraceFilter(model=MODELS[1], node="node-04"), limit=50, count=False
                ),
            )
            timed(
                "rare filter (failed, node, tag), with total",
                lambda: trace_page(con, rare, limit=50),
            )
            deep = (int((now - count * 0.25) * 1_000_000), "t")  # halfway down the log
            timed(
                "page halfway down by cursor, no count",
                lambda: trace_page(con, TraceFilter(), limit=50, cursor=deep, count=False),
            )
            timed(
                "next page by the first page's cursor",
                lambda: trace_page(
                    con, TraceFilter(), limit=50, cursor=parse_cursor(page["next"]), count=False
                ),
            )
            timed(
                "last hour, filtered by API key",
                lambda: trace_page(
                    con, TraceFilter(api_key="ci", since=now - 3600), limit=50, count=False
                ),
            )
        sink.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--queued", type=int, default=200, help="requests waiting in queues")
    parser.add_argument("--seconds", type=float, default=6.0, help="live redraws to sample")
    parser.add_argument("--docs", type=Path, help="write the docs screenshots here instead")
    parser.add_argument("--traces", type=int, nargs="?", const=1_000_000, help="time the log")
    args = parser.parse_args()
    if args.traces:
        trace_log(args.traces)
        return
    why = browser_missing()
    if why:
        sys.exit(f"bench_dashboard: {why}")
    if args.docs:
        docs_screenshots(args.docs)
        return
    total = args.nodes + args.queued
    with fleet(args.nodes, gen_tps=2.0) as router:
        stop = threading.Event()
        # one model, one slot per node: each node runs one, the rest wait in its queue
        holder = hold_requests(router.url, total, stop, MODELS[:1])
        try:
            snapshot = wait_for_queue(router.url, total)
            summary = snapshot["summary"]
            print(
                f"fleet: {summary['nodes']} nodes, {summary['running']} running, "
                f"{summary['queued']} queued; snapshot {len(httpx.get(router.url + '/dashboard/api/fleet').content) / 1024:.0f} KB"  # noqa: E501
            )
            result = measure(router, args.nodes, total, args.seconds)
        finally:
            stop.set()
            holder.join(timeout=15)
    redraws = result["redraws"]
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'navigation -> first complete overview (ms)':<44}{result['first']:>12.0f}")
    print(f"{'live redraw, median (ms)':<44}{statistics.median(redraws):>12.1f}")
    print(f"{'live redraw, max (ms)':<44}{max(redraws):>12.1f}")
    print(f"{'live redraws sampled':<44}{len(redraws):>12d}")


if __name__ == "__main__":
    main()
