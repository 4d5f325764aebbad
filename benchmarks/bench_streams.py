"""Many streams at once: 1,000 concurrent paced streams through one router.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_streams.py [--streams 1000] [--untold]

One emulated node that serves them all at once (num_parallel above the stream count,
32 tokens at 10 tokens/s: each stream lasts about 3 s, so they overlap), one router told
so in YAML. All streams start together; the table shows how many completed, the latency
clients saw, and the router's peak resident memory (VmHWM from /proc). Target: every
stream completes and the router stays under 200 MB. Bounded: one round, 120 s at most.
``--untold`` leaves the node's parallelism out of the YAML: the router starts at
``default_num_parallel`` (4) and learns it (``routing.adaptive_concurrency``); the rest wait
in its queue meanwhile, and the table shows the limit it learned.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).parent))

from _harness import percentile, router, sim_node, stream_chat, table

MODEL = "llama3.2:3b"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def burst(url: str, streams: int, deadline_s: float) -> tuple[int, list[float], list[str]]:
    """``streams`` streamed chats started together: (completed, latencies, errors)."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=deadline_s)
    latencies: list[float] = []
    errors: list[str] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            try:
                _, total, lines = await stream_chat(session, url, MODEL)
                if lines < 2:
                    errors.append(f"{lines} lines")
                else:
                    latencies.append(total)
            except Exception as exc:  # counted, not raised: the table says how many failed
                errors.append(type(exc).__name__ + ": " + str(exc)[:80])

        await asyncio.gather(*(one() for _ in range(streams)))
    return len(latencies), latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--untold", action="store_true", help="learn the node's parallelism")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.streams)), hard))
    slots = str(args.streams + 24)
    sim = ["--num-parallel", slots, "--max-queue", slots, "--gen-tps", "10", "--reply-tokens", "32"]
    told = f"routing: {{default_num_parallel: {slots}, max_queue_depth: {slots}}}\n"
    if args.untold:
        told = f"routing: {{max_queue_depth: {slots}}}\n"
    with sim_node(*sim) as (node_url, _), router([node_url], told) as (router_url, proc):
        asyncio.run(burst(router_url, 4, 60))  # load the model
        idle = rss_mb(proc.pid)
        started = time.perf_counter()
        done, latencies, errors = asyncio.run(burst(router_url, args.streams, 120))
        wall = time.perf_counter() - started
        peak = peak_rss_mb(proc.pid)
        nodes = httpx.get(router_url + "/fleet/queue").json()["nodes"]
        row = next(iter(next(iter(nodes.values())).values()), {})
    rows = [
        [
            args.streams,
            done,
            len(errors),
            f"{percentile(latencies, 0.5):.2f}" if latencies else "-",
            f"{percentile(latencies, 0.99):.2f}" if latencies else "-",
            f"{wall:.1f}",
            f"{idle:.0f}",
            f"{peak:.0f}",
        ]
    ]
    print(f"\n{args.streams} concurrent paced streams (32 tokens at 10/s) through one router")
    headers = ["streams", "completed", "failed", "p50 s", "p99 s", "wall s", "idle MB", "peak MB"]
    print(table(headers, rows))
    print(f"concurrency: {row.get('concurrency')} ({row.get('concurrency_source')})")
    for error in sorted(set(errors))[:5]:
        print("  error:", error)


if __name__ == "__main__":
    main()
