"""What cluster mode costs and gives: added latency per request, and 1, 2, 3 replicas.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_cluster.py [--quick]

Needs Debian's ``redis-server`` (started here on a free 127.0.0.1 port, no persistence)
and the ``redis`` client (``pip install -e '.[cluster]'``). Measures, in one run:
  1. the store round trips alone: admit + release of one lease (RedisState, local Redis);
  2. sequential streamed chats through one router, alone vs ``cluster.redis_url`` set
     (p50/p99 and the difference): the added latency per request;
  3. throughput of 1, 2 and 3 replicas (each its own process, sharing one Redis) in front
     of emulated nodes with room to spare, the client spread round-robin over replicas.
Every loop is bounded in count and time; every process stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import free_port, percentile, router, sim_node, stream_chat, table

MODEL = "llama3.2:3b"
SLOTS = "routing: {default_num_parallel: 256, max_queue_depth: 1024}\n"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("bench_cluster needs redis-server (apt-get install redis-server)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def cluster_yaml(url: str, prefix: str = "") -> str:
    prefix = prefix or f"bench{uuid.uuid4().hex[:6]}"
    return f"cluster: {{redis_url: '{url}', key_prefix: '{prefix}:'}}\n"


async def store_round_trips(url: str, count: int) -> list[float]:
    from herd.settings import ClusterSettings
    from herd.shared_state import Lease
    from herd_contrib.cluster import RedisState

    store = RedisState(ClusterSettings(redis_url=url, key_prefix="micro:"), "bench")
    times = []
    try:
        for i in range(count + 20):
            lease = Lease("n0", MODEL, f"lease-{i}")
            start = time.perf_counter()
            await store.admit(lease, 4, 64)
            admitted = time.perf_counter()
            await store.release(lease)
            if i >= 20:
                times.append((admitted - start, time.perf_counter() - admitted))
    finally:
        await store.close()
    return times


async def alternating(first: str, second: str, count: int) -> tuple[list[float], list[float]]:
    """``count`` sequential streamed chats on each router, one on each in turn."""
    times: tuple[list[float], list[float]] = ([], [])
    async with aiohttp.ClientSession() as session:
        for i in range(count + 10):
            for url, out in ((first, times[0]), (second, times[1])):
                _, total, _ = await stream_chat(session, url, MODEL)
                if i >= 10:
                    out.append(total)
    return times


async def spread(urls: list[str], concurrency: int, total: int, deadline_s: float) -> float:
    """``total`` streamed chats, ``concurrency`` at a time, round-robin over ``urls``."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    done = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        stop_at = time.perf_counter() + deadline_s
        queue = list(range(total))

        async def worker(index: int) -> None:
            nonlocal done
            url = urls[index % len(urls)]
            while queue and time.perf_counter() < stop_at:
                queue.pop()
                await stream_chat(session, url, MODEL)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per reply")
    args = parser.parse_args()
    seq_count = 150 if args.quick else 500
    micro_count = 500 if args.quick else 2000
    per_level = 180 if args.quick else 900
    sim_args = ["--num-parallel", "256", "--gen-tps", "0", "--reply-tokens", str(args.tokens)]

    with redis_server() as redis_url:
        trips = asyncio.run(store_round_trips(redis_url, micro_count))
        admits, releases = [t[0] * 1000 for t in trips], [t[1] * 1000 for t in trips]
        print(f"\nStore round trips (local Redis, {micro_count} leases)")
        rows = [
            ["admit (Lua)", f"{percentile(admits, 0.5):.3f}", f"{percentile(admits, 0.99):.3f}"],
            [
                "release (Lua)",
                f"{percentile(releases, 0.5):.3f}",
                f"{percentile(releases, 0.99):.3f}",
            ],
        ]
        print(table(["call", "p50 ms", "p99 ms"], rows))

        rows = []
        with (
            sim_node(*sim_args) as (node_url, _),
            router([node_url], SLOTS) as (alone_url, _),
            router([node_url], SLOTS + cluster_yaml(redis_url, "lat")) as (shared_url, _),
            router([node_url], SLOTS + cluster_yaml(redis_url, "lat")),  # a peer, idle
        ):
            await_peers = 4.0  # the replicas count each other on their next beat (TTL / 3)
            time.sleep(await_peers)
            # Interleaved, so the machine's load hits both the same way.
            alone, shared = asyncio.run(alternating(alone_url, shared_url, seq_count))
        for q in (0.5, 0.99):
            a, s = percentile(alone, q) * 1000, percentile(shared, q) * 1000
            rows.append([f"p{int(q * 100)} (ms)", f"{a:.2f}", f"{s:.2f}", f"{s - a:+.2f} ms"])
        print(
            f"\nOne router alone vs one of two replicas, {seq_count} sequential streamed chats "
            f"each, {args.tokens} tokens, interleaved"
        )
        print(table(["latency", "alone", "cluster on", "added"], rows))

        rows = []
        with contextlib.ExitStack() as stack:
            nodes = [stack.enter_context(sim_node(*sim_args))[0] for _ in range(2)]
            prefix = cluster_yaml(redis_url)
            replicas = [stack.enter_context(router(nodes, SLOTS + prefix))[0] for _ in range(3)]
            base = 0.0
            for count in (1, 2, 3):
                rps = asyncio.run(spread(replicas[:count], 24 * count, per_level, 60))
                base = base or rps
                rows.append([count, 24 * count, f"{rps:.1f}", f"{rps / base:.2f}x"])
        print(f"\nReplicas sharing one Redis, 2 unpaced nodes, {per_level} streams per row")
        print(table(["replicas", "client concurrency", "req/s", "vs 1"], rows))


if __name__ == "__main__":
    main()
