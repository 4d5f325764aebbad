"""How much the router costs: added latency and throughput, router vs the same node direct.

Run by hand (not in CI):
    .venv/bin/python benchmarks/bench_gateway.py [--quick] [--gap-ms MS]
        [--against DIR [--against-yaml YAML]] ...

Starts one emulated node (herd-sim) and one router (herd) as separate processes on free
127.0.0.1 ports, then measures, in the same run:
  1. sequential streamed chats (p50/p99 latency), direct and through the router;
  2. the router process's CPU time per sequential request, split into user and system
     time, with its sleeps (voluntary context switches) and preemptions per request: a
     faster router catches more of an unpaced node's tokens one by one, each a read, a
     write and a sleep in the kernel, so its system time can grow as its own code shrinks;
     beside the routers, the floor: a bare relay on the same stack (``floor_proxy.py``:
     uvloop and httptools, no routing, no JSON, no trace), what any Python router pays
     here before its own work;
  3. throughput at 16 and 64 concurrent paced streams, direct, through the router and
     through the floor.

``--against DIR`` adds another checkout's router (run with ``DIR/.venv``) in front of the
same node, so an older commit is a baseline measured in the same run. The sequential chats
go in rounds of ``--batch``: direct, then each router, in an order that turns every round,
so a slow spell of this shared VM falls on all of them alike. The paced streams go the
same way, in ``--paced-rounds`` rounds per level whose order turns. Ratios are to the first
``--against`` checkout. ``--against-yaml`` is the YAML those routers get (an old checkout
may not know today's settings). ``--gap-ms`` puts think time between chats, so the router's
bookkeeping after one answer is not on the next request's path, as with a person typing.

Every loop is bounded in count and time; all processes stop at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import (
    BIN,
    checkout_bin,
    concurrent,
    cpu_seconds,
    cpu_split_and_switches,
    free_port,
    percentile,
    process,
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
    bin_dir: Path | None  # None: the node direct (or the floor)
    yaml: str = ""
    floor: bool = False  # the bare relay of floor_proxy.py, not a router
    url: str = ""
    pid: int = 0
    times: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    # (user s, system s, voluntary, involuntary switches) over the sequential rounds
    split: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])


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
                split0 = cpu_split_and_switches(target.pid) if target.pid else (0, 0, 0, 0)
                for _ in range(batch):
                    _, total, _ = await stream_chat(session, target.url, MODEL)
                    target.times.append(total)
                    if gap_s:
                        await asyncio.sleep(gap_s)
                if target.pid:
                    target.cpu_s += cpu_seconds(target.pid) - cpu0
                    split1 = cpu_split_and_switches(target.pid)
                    for i, (a, b) in enumerate(zip(split0, split1, strict=True)):
                        target.split[i] += b - a
    finally:
        for session in sessions:
            await session.close()


def sequential_section(targets: list[Target], args: argparse.Namespace, count: int) -> None:
    sim_args = ["--num-parallel", "256", "--gen-tps", "0", "--reply-tokens", str(args.tokens)]
    with sim_node(*sim_args) as (node_url, node), contextlib.ExitStack() as stack:
        for target in targets:
            if target.floor:
                target.url, proc = stack.enter_context(floor_relay(node_url))
                target.pid = proc.pid
            elif target.bin_dir is None:
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
    # ratios are to the first --against checkout
    base = next((t for t in routers[1:] if not t.floor), None)
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
    print(
        "\nWhere each router's CPU went: user and system time (from ticks, over all rounds) "
        "and context switches per request"
    )
    split_rows = []
    for target in routers:
        user, system, voluntary, involuntary = target.split
        n = len(target.times)
        share = user / (user + system) if user + system else 0.0
        split_rows.append(
            [
                target.name,
                f"{target.cpu_s / n * 1000 * share:.3f}",
                f"{target.cpu_s / n * 1000 * (1 - share):.3f}",
                f"{voluntary / n:.2f}",
                f"{involuntary / n:.2f}",
            ]
        )
    print(table(["router", "user ms", "system ms", "sleeps", "preempted"], split_rows))
    # the node's CPU per request: a control for the VM's speed during the run
    print(f"node CPU per streamed request (control): {node_ms:.2f} ms")


@contextlib.contextmanager
def floor_relay(node_url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The bare relay of ``floor_proxy.py`` in front of ``node_url``, on a free port."""
    host, port = node_url.removeprefix("http://").split(":")
    own = free_port()
    url = f"http://127.0.0.1:{own}"
    script = str(Path(__file__).parent / "floor_proxy.py")
    with process([sys.executable, script, host, port, str(own)], url + "/") as proc:
        yield url, proc


def paced_section(targets: list[Target], args: argparse.Namespace, per_level: int) -> None:
    """Each level in ``args.paced_rounds`` rounds, direct and every router in an order
    that turns every round (as the sequential chats do), so a slow spell of the VM or a
    warm node does not always fall on the same target; the figures are the rounds' sums."""
    paced_args = ["--num-parallel", "256", "--gen-tps", str(args.gen_tps)]
    paced_args += ["--reply-tokens", str(args.tokens)]
    rows: list[list[object]] = []
    with sim_node(*paced_args) as (node_url, _), contextlib.ExitStack() as stack:
        targets[0].url = node_url
        for target in targets[1:]:
            if target.floor:
                target.url, proc = stack.enter_context(floor_relay(node_url))
            else:
                target.url, proc = stack.enter_context(
                    router([node_url], target.yaml, target.bin_dir)
                )
            target.pid = proc.pid
        for level in (16, 64):
            # (a round is at least one full wave of ``level`` streams)
            rounds = max(1, min(args.paced_rounds, per_level // level))
            per_round = per_level // rounds
            done = dict.fromkeys(range(len(targets)), 0)
            seconds = dict.fromkeys(range(len(targets)), 0.0)
            cpu = dict.fromkeys(range(len(targets)), 0.0)
            for turn in range(rounds):
                order = list(range(len(targets)))
                order = order[turn % len(order) :] + order[: turn % len(order)]
                for i in order:
                    target = targets[i]
                    cpu0 = cpu_seconds(target.pid) if target.pid else 0.0
                    n, secs = asyncio.run(concurrent(target.url, MODEL, level, per_round, 120))
                    if target.pid:
                        cpu[i] += cpu_seconds(target.pid) - cpu0
                    done[i] += n
                    seconds[i] += secs
            rps_d = done[0] / seconds[0]
            rows.append([level, "direct", f"{rps_d:.1f}", "", ""])
            for i, target in enumerate(targets[1:], start=1):
                rps_r = done[i] / seconds[i]
                cpu_ms = cpu[i] / max(done[i], 1) * 1000
                rows.append(
                    [level, target.name, f"{rps_r:.1f}", f"{rps_r / rps_d:.3f}x", f"{cpu_ms:.2f}"]
                )
    print(
        f"\nPaced node ({args.gen_tps:g} tokens/s per stream, {args.tokens} tokens), "
        f"{per_level} streams per level and target, in up to {args.paced_rounds} rounds"
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
    parser.add_argument("--no-floor", action="store_true", help="no bare relay beside routers")
    parser.add_argument(
        "--paced-rounds", type=int, default=4, help="rounds per paced level (order turns)"
    )
    args = parser.parse_args()
    seq_count = args.sequential or (100 if args.quick else 300)
    per_level = 128 if args.quick else 384

    def targets() -> list[Target]:
        found = [Target("direct", None), Target("this checkout", BIN, SLOTS)]
        for checkout in args.against:
            found.append(Target(checkout, checkout_bin(checkout), args.against_yaml))
        return found

    def with_floor() -> list[Target]:
        found = targets()
        if not args.no_floor:
            found.append(Target("floor: a bare relay", None, floor=True))
        return found

    started = time.monotonic()
    sequential_section(with_floor(), args, seq_count)
    if not args.no_paced:
        paced_section(with_floor(), args, per_level)
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
