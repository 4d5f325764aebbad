"""Adaptive concurrency: an untold node's parallelism, learned from its latency.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_adaptive.py [--seconds 30]

1. One emulated node serving 64 streams at once (32 tokens at 5 ms each), behind a router
   told nothing (no agent, no nodes[].num_parallel: it starts at default_num_parallel 4).
   64 paced streams run directly, then through the router for ``--seconds``; the table
   shows throughput per 5 s window against direct, and the limit /fleet/queue shows.
2. One node serving 1 at a time, 16 streams through the router: the learned limit, the
   most the node ever had at once (its own count) and the latency clients saw.
Every loop is bounded in count and time; all processes stop at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).parent))

from _harness import percentile, router, sim_node, stream_chat, table

MODEL = "llama3.2:3b"
WINDOW_S = 5.0


async def paced(url: str, streams: int, seconds: float) -> tuple[list[int], list[float]]:
    """``streams`` clients chatting back to back for ``seconds``: completions per window
    and each request's latency."""
    windows = [0] * max(1, int(seconds / WINDOW_S))
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=streams)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        stop_at = start + seconds

        async def client() -> None:
            while time.perf_counter() < stop_at:
                _, total, _ = await stream_chat(session, url, MODEL)
                latencies.append(total)
                index = int((time.perf_counter() - start) / WINDOW_S)
                if index < len(windows):
                    windows[index] += 1

        await asyncio.gather(*(client() for _ in range(streams)))
    return windows, latencies


def queue_row(url: str) -> dict:
    nodes = httpx.get(url + "/fleet/queue").json()["nodes"]
    return next(iter(next(iter(nodes.values())).values()), {})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0, help="time through the router")
    args = parser.parse_args()
    wide = ["--num-parallel", "64", "--gen-tps", "200", "--reply-tokens", "32"]
    with sim_node(*wide) as (node_url, _), router([node_url]) as (router_url, _):
        asyncio.run(paced(node_url, 8, 2.0))  # load the model
        direct, _ = asyncio.run(paced(node_url, 64, 10.0))
        direct_rate = sum(direct) / (len(direct) * WINDOW_S)
        routed, latencies = asyncio.run(paced(router_url, 64, args.seconds))
        row = queue_row(router_url)
    told_yaml = "routing: {default_num_parallel: 64, adaptive_concurrency: false}\n"
    with sim_node(*wide) as (node_url, _), router([node_url], told_yaml) as (router_url, _):
        asyncio.run(paced(router_url, 8, 2.0))
        told, _ = asyncio.run(paced(router_url, 64, 10.0))
        told_rate = sum(told) / (len(told) * WINDOW_S)
    rows = [
        ["direct", "-", f"{direct_rate:.1f}", "1.00"],
        ["herd told 64", "-", f"{told_rate:.1f}", f"{told_rate / direct_rate:.2f}"],
    ]
    for index, count in enumerate(routed):
        rate = count / WINDOW_S
        window = f"{index * WINDOW_S:.0f}-{(index + 1) * WINDOW_S:.0f} s"
        rows.append(["herd learning", window, f"{rate:.1f}", f"{rate / direct_rate:.2f}"])
    print("\n64-slot node, 64 paced streams (32 tokens x 5 ms), router told nothing")
    print(table(["path", "window", "streams/s", "x direct"], rows))
    print(
        f"learned limit: {row.get('concurrency')} ({row.get('concurrency_source')}); "
        f"p50 latency through herd {percentile(latencies, 0.5) * 1000:.0f} ms"
    )

    narrow = ["--num-parallel", "1", "--gen-tps", "200", "--reply-tokens", "32"]
    with sim_node(*narrow) as (node_url, _), router([node_url]) as (router_url, _):
        asyncio.run(paced(router_url, 16, 10.0))
        row = queue_row(router_url)
        stats = httpx.get(node_url + "/_sim/stats").json()
    print("\n1-slot node, 16 paced streams through herd for 10 s")
    print(
        f"learned limit: {row.get('concurrency')} ({row.get('concurrency_source')}); "
        f"completed {row.get('done')}; node served at most {stats['max_concurrent']} at once"
    )


if __name__ == "__main__":
    main()
