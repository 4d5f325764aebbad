"""How much the router costs: added latency and throughput, router vs the same node direct.

Run by hand (not in CI):
    .venv/bin/python benchmarks/bench_gateway.py [--quick] [--gap-ms MS]
        [--against DIR [--against-yaml YAML]] ...

Starts one emulated node (herd-sim) and one router (herd) as separate processes on free
127.0.0.1 ports, then measures, in the same run:
  1. sequential streamed chats (p50/p99 latency), direct and through the router;
  2. the router process's CPU time per sequential request;
  3. throughput at 16 and 64 concurrent paced streams, direct and through the router.

``--against DIR`` adds another checkout's router (run with ``DIR/.venv``) in front of the
same node, so an older commit is a baseline measured in the same run. The sequential chats
go in rounds of ``--batch``: direct, then each router, in an order that turns every round,
so a slow spell of this shared VM falls on all of them alike. Ratios are to the first
``--against`` checkout. ``--against-yaml`` is the YAML those routers get (an old checkout
may not know today's settings). ``--gap-ms`` puts think time between chats, so the router's
bookkeeping after one answer is not on the next request's path, as with a person typing.

Every loop is bounded in count and time; all processes stop at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import (
    BIN,
    checkout_bin,
    concurrent,
    cpu_seconds,
    percentile,
    router,
    sim_node,
    stream_chat,
    table,
)

MODEL = "llama3.2:3b"
# The node serves 256 at once (--num-parallel 256); the router is told, as YAML would.
SLOTS = "routing: {default_num_parallel: 256, adaptive_concurrency: false}\n"


@dataclass
class Target:
    """Where requests go: the node itself, or a router (with its process, for CPU time)."""

    name: str
    bin_dir: Path | None  # None: the node direct
    yaml: str = ""
    url: str = ""
    pid: int = 0
    times: list[float] = field(default_factory=list)
    cpu_s: float = 0.0


async def _rounds(targets: list[Target], count: int, batch: int, gap_s: float) -> None:
    """``count`` chats per target, in batches whose order turns every round."""
    sessions = [aiohttp.ClientSession() for _ in targets]
    try:
        for target, session in zip(targets, sessions, strict=True):
            for _ in range(5):  # warm up: connection, first-request paths
                await stream_chat(session, target.url, MODEL)
        rounds = max(1, count // batch)
        for round_no in range(rounds):
            turn = round_no % len(targets)
            order = list(zip(targets, sessions, strict=True))
            for target, session in order[turn:] + order[:turn]:
                cpu0 = cpu_seconds(target.pid) if target.pid else 0.0
                for _ in range(batch):
                    _, total, _ = await stream_chat(session, target.url, MODEL)
                    target.times.append(total)
                    if gap_s:
                        await asyncio.sleep(gap_s)
                if target.pid:
                    target.cpu_s += cpu_seconds(target.pid) - cpu0
    finally:
        for session in sessions:
            await session.close()


def sequential_section(targets: list[Target], args: argparse.Namespace, count: int) -> None:
    sim_args = ["--num-parallel", "256", "--gen-tps", "0", "--reply-tokens", str(args.tokens)]
    with sim_node(*sim_args) as (node_url, node), contextlib.ExitStack() as stack:
        for target in targets:
            if target.bin_dir is None:
                target.url = node_url
            else:
                target.url, proc = stack.enter_context(
                    router([node_url], target.yaml, target.bin_dir)
                )
                target.pid = proc.pid
        node0 = cpu_seconds(node.pid)
        asyncio.run(_rounds(targets, count, args.batch, args.gap_ms / 1000))
        done = sum(len(t.times) for t in targets) + 5 * len(targets)
        node_ms = (cpu_seconds(node.pid) - node0) / done * 1000

    direct = targets[0].times
    routers = targets[1:]
    base = routers[1] if len(routers) > 1 else None
    rows: list[list[object]] = []
    for target in routers:
        per_request_ms = target.cpu_s / len(target.times) * 1000
        row: list[object] = [target.name]
        for q in (0.5, 0.99):
            d, r = percentile(direct, q) * 1000, percentile(target.times, q) * 1000
            row += [f"{r:.2f}", f"+{r - d:.2f}"]
        row.append(f"{per_request_ms:.2f}")
        if base is not None:
            added = percentile(target.times, 0.5) - percentile(direct, 0.5)
            base_added = percentile(base.times, 0.5) - percentile(direct, 0.5)
            base_ms = base.cpu_s / len(base.times) * 1000
            ratio = f"{added / base_added:.2f}x" if base_added > 0 else "n/a"
            row += [ratio, f"{per_request_ms / base_ms:.2f}x"]
        rows.append(row)
    headers = ["router", "p50 ms", "added p50", "p99 ms", "added p99", "CPU ms/req"]
    if base is not None:
        headers += ["added p50 ratio", "CPU ratio"]
    gap = f", {args.gap_ms:g} ms apart" if args.gap_ms else ""
    print(
        f"\nUnpaced node, {args.tokens} tokens per reply, {count} sequential streamed chats "
        f"per target{gap}, in rounds of {args.batch}"
    )
    print(
        f"direct: p50 {percentile(direct, 0.5) * 1000:.2f} ms, "
        f"p99 {percentile(direct, 0.99) * 1000:.2f} ms"
    )
    print(table(headers, rows))
    # the node's CPU per request: a control for the VM's speed during the run
    print(f"node CPU per streamed request (control): {node_ms:.2f} ms")


def paced_section(targets: list[Target], args: argparse.Namespace, per_level: int) -> None:
    paced_args = ["--num-parallel", "256", "--gen-tps", str(args.gen_tps)]
    paced_args += ["--reply-tokens", str(args.tokens)]
    rows: list[list[object]] = []
    with sim_node(*paced_args) as (node_url, _), contextlib.ExitStack() as stack:
        for target in targets[1:]:
            target.url, proc = stack.enter_context(router([node_url], target.yaml, target.bin_dir))
            target.pid = proc.pid
        for level in (16, 64):
            done_d, secs_d = asyncio.run(concurrent(node_url, MODEL, level, per_level, 120))
            rps_d = done_d / secs_d
            rows.append([level, "direct", f"{rps_d:.1f}", "", ""])
            for target in targets[1:]:
                cpu0 = cpu_seconds(target.pid)
                done_r, secs_r = asyncio.run(concurrent(target.url, MODEL, level, per_level, 120))
                cpu_ms = (cpu_seconds(target.pid) - cpu0) / max(done_r, 1) * 1000
                rps_r = done_r / secs_r
                rows.append(
                    [level, target.name, f"{rps_r:.1f}", f"{rps_r / rps_d:.3f}x", f"{cpu_ms:.2f}"]
                )
    print(
        f"\nPaced node ({args.gen_tps:g} tokens/s per stream, {args.tokens} tokens), "
        f"{per_level} streams per level"
    )
    print(table(["concurrency", "target", "req/s", "ratio to direct", "router CPU ms/req"], rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per reply")
    parser.add_argument("--gen-tps", type=float, default=50.0, help="node pacing per stream")
    parser.add_argument("--sequential", type=int, default=0, help="sequential chats (300)")
    parser.add_argument("--batch", type=int, default=50, help="sequential chats per round")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="think time between chats")
    parser.add_argument(
        "--against", action="append", default=[], metavar="DIR", help="another checkout's router"
    )
    parser.add_argument("--against-yaml", default=SLOTS, help="YAML for --against routers")
    parser.add_argument("--no-paced", action="store_true", help="sequential chats only")
    args = parser.parse_args()
    seq_count = args.sequential or (100 if args.quick else 300)
    per_level = 128 if args.quick else 384

    def targets() -> list[Target]:
        found = [Target("direct", None), Target("this checkout", BIN, SLOTS)]
        for checkout in args.against:
            found.append(Target(checkout, checkout_bin(checkout), args.against_yaml))
        return found

    started = time.monotonic()
    sequential_section(targets(), args, seq_count)
    if not args.no_paced:
        paced_section(targets(), args, per_level)
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
