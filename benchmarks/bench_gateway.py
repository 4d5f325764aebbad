"""How much the router costs: added latency and throughput, router vs the same node direct.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_gateway.py [--quick]

Starts one emulated node (herd-sim) and one router (herd) as separate processes on free
127.0.0.1 ports, then measures, in the same run:
  1. sequential streamed chats (p50/p99 latency), direct and through the router;
  2. throughput at 16 and 64 concurrent paced streams, direct and through the router;
  3. the router process's CPU time per request.
Every loop is bounded in count and time; both processes stop at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import (
    concurrent,
    cpu_seconds,
    percentile,
    router,
    sequential,
    sim_node,
    table,
)

MODEL = "llama3.2:3b"
# The node serves 256 at once (--num-parallel 256); the router is told, as YAML would.
SLOTS = "routing: {default_num_parallel: 256, adaptive_concurrency: false}\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per reply")
    parser.add_argument("--gen-tps", type=float, default=50.0, help="node pacing per stream")
    parser.add_argument("--sequential", type=int, default=0, help="sequential chats (300)")
    args = parser.parse_args()
    seq_count = args.sequential or (100 if args.quick else 300)
    per_level = 128 if args.quick else 384

    sim_args = ["--num-parallel", "256", "--gen-tps", "0", "--reply-tokens", str(args.tokens)]
    paced_args = [
        "--num-parallel",
        "256",
        "--gen-tps",
        str(args.gen_tps),
        "--reply-tokens",
        str(args.tokens),
    ]

    rows: list[list[object]] = []
    with sim_node(*sim_args) as (node_url, node), router([node_url], SLOTS) as (router_url, proc):
        direct = asyncio.run(sequential(node_url, MODEL, seq_count))
        cpu0, node0 = cpu_seconds(proc.pid), cpu_seconds(node.pid)
        routed = asyncio.run(sequential(router_url, MODEL, seq_count))
        cpu_per_request_ms = (cpu_seconds(proc.pid) - cpu0) / (seq_count + 5) * 1000
        node_per_request_ms = (cpu_seconds(node.pid) - node0) / (seq_count + 5) * 1000
        for q in (0.5, 0.99):
            d, r = percentile(direct, q) * 1000, percentile(routed, q) * 1000
            rows.append(
                [f"sequential p{int(q * 100)} (ms)", f"{d:.2f}", f"{r:.2f}", f"+{r - d:.2f} ms"]
            )
    print(f"\nUnpaced node, {args.tokens} tokens per reply, {seq_count} sequential streamed chats")
    print(table(["measure", "direct", "router", "added"], rows))
    print(f"router CPU per streamed request: {cpu_per_request_ms:.2f} ms")
    # the node's CPU for the same requests: a control for the VM's speed during the run
    print(f"node CPU per streamed request (control): {node_per_request_ms:.2f} ms")

    rows = []
    with sim_node(*paced_args) as (node_url, _), router([node_url], SLOTS) as (router_url, proc):
        for level in (16, 64):
            done_d, secs_d = asyncio.run(concurrent(node_url, MODEL, level, per_level, 120))
            cpu0 = cpu_seconds(proc.pid)
            done_r, secs_r = asyncio.run(concurrent(router_url, MODEL, level, per_level, 120))
            cpu_ms = (cpu_seconds(proc.pid) - cpu0) / max(done_r, 1) * 1000
            rps_d, rps_r = done_d / secs_d, done_r / secs_r
            rows.append(
                [level, f"{rps_d:.1f}", f"{rps_r:.1f}", f"{rps_r / rps_d:.3f}x", f"{cpu_ms:.2f}"]
            )
    print(
        f"\nPaced node ({args.gen_tps:g} tokens/s per stream, {args.tokens} tokens), "
        f"{per_level} streams per level"
    )
    print(
        table(["concurrency", "direct req/s", "router req/s", "ratio", "router CPU ms/req"], rows)
    )


if __name__ == "__main__":
    main()
