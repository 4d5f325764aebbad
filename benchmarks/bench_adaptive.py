"""Adaptive concurrency: an untold node's parallelism, learned from its latency.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_adaptive.py [--seconds 30]

1. One emulated node serving 64 streams at once (32 tokens at 5 ms each). 64 paced streams
   run directly, then through a router told ``num_parallel: 64`` (the ceiling: whatever it
   loses against direct is the router's own cost, not the limit), then through a router told
   nothing (no agent, no nodes[].num_parallel: it starts at default_num_parallel 4) for
   ``--seconds``. The table shows throughput per 5 s window against direct, and the CPU
   each process spent per completed stream (client, node emulator, router): on a small
   host all three share the cores, so a router's CPU per stream caps its throughput.
   The limit /fleet/queue shows is sampled once a second while the router learns.
2. One node serving 1 at a time, 16 streams through the router: the learned limit, the
   most the node ever had at once (its own count) and the latency clients saw.
Every loop is bounded in count and time; all processes stop at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).parent))

from _harness import cpu_seconds, percentile, router, sim_node, stream_chat, table

MODEL = "llama3.2:3b"
WINDOW_S = 5.0


async def paced(url: str, streams: int, seconds: float) -> tuple[list[int], list[float], list[str]]:
    """``streams`` clients chatting back to back for ``seconds``: completions per window,
    each request's latency, and the errors (counted, not raised)."""
    windows = [0] * max(1, int(seconds / WINDOW_S))
    latencies: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=streams)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        stop_at = start + seconds

        async def client() -> None:
            while time.perf_counter() < stop_at:
                try:
                    _, total, _ = await stream_chat(session, url, MODEL)
                except (aiohttp.ClientError, RuntimeError) as exc:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:80]}")
                    await asyncio.sleep(0.05)
                    continue
                latencies.append(total)
                index = int((time.perf_counter() - start) / WINDOW_S)
                if index < len(windows):
                    windows[index] += 1

        await asyncio.gather(*(client() for _ in range(streams)))
    return windows, latencies, errors


class Run:
    """One measured run: completions per window, latencies, CPU ms per stream by process."""

    def __init__(self, url: str, streams: int, seconds: float, pids: dict[str, int]) -> None:
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        client_before = time.process_time()
        self.windows, self.latencies, self.errors = asyncio.run(paced(url, streams, seconds))
        done = max(1, len(self.latencies))
        self.cpu_ms = {"client": (time.process_time() - client_before) * 1000 / done}
        for name, pid in pids.items():
            self.cpu_ms[name] = (cpu_seconds(pid) - before[name]) * 1000 / done

    @property
    def rate(self) -> float:
        return sum(self.windows) / (len(self.windows) * WINDOW_S)


def queue_row(url: str) -> dict:
    nodes = httpx.get(url + "/fleet/queue").json()["nodes"]
    return next(iter(next(iter(nodes.values())).values()), {})


def watch(url: str, stop: threading.Event, seen: list[dict]) -> None:
    """Sample the node's row of /fleet/queue once a second until ``stop``."""
    while not stop.wait(1.0):
        try:
            seen.append(queue_row(url))
        except httpx.HTTPError:
            seen.append({})


@contextlib.contextmanager
def watching(url: str) -> Iterator[list[dict]]:
    seen: list[dict] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(url, stop, seen))
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join(5)


def through_router(
    node_args: list[str], streams: int, seconds: float, yaml: str = ""
) -> tuple[Run, list[dict]]:
    """A fresh node (model loaded directly) behind a fresh router: one measured run, and
    the node's row of /fleet/queue once a second meanwhile."""
    with sim_node(*node_args) as (node_url, sim), router([node_url], yaml) as (url, proc):
        asyncio.run(paced(node_url, 8, 2.0))  # load the model; the router starts cold
        with watching(url) as seen:
            run = Run(url, streams, seconds, {"node": sim.pid, "router": proc.pid})
        seen.append(queue_row(url))
    return run, seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0, help="time through each router")
    parser.add_argument("--direct-seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=64, help="the wide node's slots too")
    parser.add_argument("--gen-tps", type=float, default=200.0, help="tokens/s per stream")
    args = parser.parse_args()
    streams, tps = args.streams, f"{args.gen_tps:g}"
    wide = ["--num-parallel", str(streams), "--gen-tps", tps, "--reply-tokens", "32"]
    told_yaml = f"routing: {{default_num_parallel: {streams}, adaptive_concurrency: false}}\n"
    load_before = os.getloadavg()[0]
    with sim_node(*wide) as (node_url, sim):
        asyncio.run(paced(node_url, 8, 2.0))  # load the model
        direct = Run(node_url, streams, args.direct_seconds, {"node": sim.pid})
    told, _ = through_router(wide, streams, args.seconds, told_yaml)
    learning, seen = through_router(wide, streams, args.seconds)
    base = direct.rate

    def cells(run: Run, rate: float) -> list[object]:
        return [f"{rate:.1f}", f"{rate / base:.2f}"]

    rows = []
    for index, (told_count, count) in enumerate(zip(told.windows, learning.windows, strict=True)):
        window = f"{index * WINDOW_S:.0f}-{(index + 1) * WINDOW_S:.0f} s"
        told_rate, rate = told_count / WINDOW_S, count / WINDOW_S
        rows.append([window, *cells(told, told_rate), *cells(learning, rate)])
        rows[-1].append(f"{rate / told_rate:.2f}" if told_rate else "-")
    rows.append(["all", *cells(told, told.rate), *cells(learning, learning.rate)])
    rows[-1].append(f"{learning.rate / told.rate:.2f}")
    print(
        f"\n{streams}-slot node, {streams} paced streams (32 tokens at {tps}/s): "
        f"direct {base:.1f} streams/s (p50 {percentile(direct.latencies, 0.5) * 1000:.0f} ms)"
    )
    headers = ["window", f"told {streams}/s", "x direct", "learning/s", "x direct", "x told"]
    print(table(headers, rows))
    print(
        f"p50 latency: told {percentile(told.latencies, 0.5) * 1000:.0f} ms, "
        f"learning {percentile(learning.latencies, 0.5) * 1000:.0f} ms; "
        f"learned limit: {seen[-1].get('concurrency')} ({seen[-1].get('concurrency_source')}); "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for name, run in (("direct", direct), ("told", told), ("learning", learning)):
        for error in sorted(set(run.errors))[:3]:
            print(f"  {name}: {run.errors.count(error)} x {error}")
    print("limit once a second:", " ".join(str(r.get("concurrency", "?")) for r in seen[:-1]))
    cpu_rows = [
        [name, *(f"{run.cpu_ms.get(p, 0.0):.2f}" for p in ("client", "node", "router"))]
        for name, run in (("direct", direct), ("told", told), ("learning", learning))
    ]
    for row in cpu_rows:
        row.append(f"{sum(float(c) for c in row[1:]):.2f}")
    print(table(["CPU ms per stream", "client", "node", "router", "total"], cpu_rows))
    direct_cpu, told_cpu = float(cpu_rows[0][-1]), float(cpu_rows[1][-1])
    print(
        f"if the cores are what limits, herd can reach {direct_cpu / told_cpu:.2f}x of direct "
        f"({direct_cpu:.2f} / {told_cpu:.2f} ms of CPU per stream)"
    )

    narrow = ["--num-parallel", "1", "--gen-tps", "200", "--reply-tokens", "32"]
    with sim_node(*narrow) as (node_url, _), router([node_url]) as (router_url, _):
        with watching(router_url) as seen:
            _, latencies, errors = asyncio.run(paced(router_url, 16, 10.0))
        row = queue_row(router_url)
        stats = httpx.get(node_url + "/_sim/stats").json()
    print("\n1-slot node, 16 paced streams through herd for 10 s")
    print(
        f"learned limit: {row.get('concurrency')} ({row.get('concurrency_source')}); "
        f"completed {row.get('done')}; node served at most {stats['max_concurrent']} at once; "
        f"p50 latency {percentile(latencies, 0.5) * 1000:.0f} ms; {len(errors)} errors"
    )
    print(
        "once a second, limit/sent to the node/held in herd:",
        " ".join(f"{r.get('concurrency')}/{r.get('in_flight')}/{r.get('pending')}" for r in seen),
    )


if __name__ == "__main__":
    main()
