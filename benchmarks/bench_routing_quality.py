"""Routing quality: herd's default signals against round-robin, least-connections, random.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_routing_quality.py [--quick]

A heterogeneous emulated fleet (four herd-sim processes: different VRAM, generation and
load speeds, two slots each, seven models on every disk) behind one herd router process.
A seeded workload of users holding conversations (1-4 turns, growing history, a Zipf-like
model mix with image requests for the vision model, think time between turns) runs once
per strategy, each from a cold fleet (fresh node processes, nothing loaded). The strategies
differ only in how a node is chosen: queues, admission and retries are herd's in all four.
Prints p50/p95 time to first token, cold loads, reloads, evictions and throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from _harness import BIN, free_port, percentile, process, table

GIB = 1024**3
PNG = (  # a 1x1 image for the vision model's requests
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/"
    "PchI7wAAAABJRU5ErkJggg=="
)

# name, GiB on disk, capabilities, share of conversations
MODELS = [
    ("llama3.2:3b", 2.0, ["completion", "tools"], 0.26),
    ("qwen2.5:7b", 4.7, ["completion", "tools"], 0.18),
    ("llama3.1:8b", 4.9, ["completion", "tools"], 0.14),
    ("qwen3:4b", 2.5, ["completion", "thinking"], 0.10),
    ("qwen2.5-coder:14b", 9.0, ["completion", "tools"], 0.12),
    ("gemma2:27b", 16.0, ["completion"], 0.10),
    ("llava:7b", 4.7, ["completion", "vision"], 0.10),
]
# name, VRAM GiB, generation tokens/s, prompt tokens/s, load s/GB
NODES = [
    ("studio", 48, 60.0, 3000.0, 0.25),
    ("gaming", 24, 45.0, 2000.0, 0.35),
    ("laptop", 12, 25.0, 1000.0, 0.5),
    ("mini", 8, 15.0, 600.0, 0.6),
]
OUR_SIGNALS = [
    "thermal",
    "memory-fit",
    "queue-depth",
    "wait-time",
    "role-affinity",
    "availability",
    "context-fit",
    "session-affinity",
]
STRATEGIES = {
    "herd default": {},
    "round-robin": {**{s: {"weight": 0} for s in OUR_SIGNALS}, "round-robin": {"weight": 1}},
    "least-connections": {
        **{s: {"weight": 0} for s in OUR_SIGNALS},
        "least-connections": {"weight": 1},
    },
    "random": {**{s: {"weight": 0} for s in OUR_SIGNALS}, "random": {"weight": 1}},
}


@dataclass
class Turn:
    model: str
    messages: list[dict]
    num_predict: int
    think_s: float


def workload(users: int, conversations: int, seed: int) -> list[list[list[Turn]]]:
    """Per user, a list of conversations, each a list of turns (same for every strategy)."""
    rng = random.Random(seed)
    names = [m[0] for m in MODELS]
    shares = [m[3] for m in MODELS]
    plan = []
    for user in range(users):
        chats = []
        for index in range(conversations):
            model = rng.choices(names, shares)[0]
            history: list[dict] = []
            if rng.random() < 0.5:
                history.append({"role": "system", "content": "You are helpful. " * 20})
            chat = []
            for turn in range(rng.choice((1, 2, 2, 3, 4))):
                text = f"user {user} chat {index} turn {turn}: " + "please explain " * rng.randint(
                    5, 120
                )
                message: dict = {"role": "user", "content": text}
                if model.startswith("llava") and turn == 0:
                    message["images"] = [PNG]
                history = [*history, message]
                chat.append(Turn(model, history, rng.randint(24, 64), rng.uniform(0.1, 0.8)))
                history = [*history, {"role": "assistant", "content": "answer " * 40}]
            chats.append(chat)
        plan.append(chats)
    return plan


@contextlib.contextmanager
def fleet(workdir: Path) -> Iterator[list[tuple[str, str]]]:
    """Start the four nodes; yields (name, url) pairs."""
    with contextlib.ExitStack() as stack:
        nodes = []
        for name, vram, gen_tps, prompt_tps, load_s in NODES:
            config = {
                "name": name,
                "vram_bytes": vram * GIB,
                "num_parallel": 2,
                "gen_tps": gen_tps,
                "prompt_tps": prompt_tps,
                "load_seconds_per_gb": load_s,
                "models": [
                    {"name": m, "size": int(gb * GIB), "capabilities": caps}
                    for m, gb, caps, _ in MODELS
                ],
            }
            path = workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config))
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            args = [str(BIN / "herd-sim"), "--config", str(path), "--port", str(port)]
            stack.enter_context(process(args, url + "/"))
            nodes.append((name, url))
        yield nodes


@contextlib.contextmanager
def router(
    workdir: Path, nodes: list[tuple[str, str]], signals: dict, agentless: bool = False
) -> Iterator[str]:
    port = free_port()
    vram = {name: gib for name, gib, *_ in NODES}
    config = {
        "data_dir": str(workdir / "data"),
        "log_level": "warning",
        "nodes": [
            {
                "name": n,
                "url": u,
                "num_parallel": 2,
                "tags": [] if agentless else [f"vram:{vram[n]}"],
            }
            for n, u in nodes
        ],
        "plugins": {"load": ["routing_baselines"]},
        "routing": {"signals": signals},
    }
    path = workdir / "herd.yaml"
    path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    env = {"PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = [str(BIN / "herd"), "--config", str(path), "--port", str(port)]
    with process(args, url + "/healthz", env=env):
        yield url


async def run_workload(url: str, plan: list[list[list[Turn]]]) -> tuple[list[float], int, float]:
    """Returns (TTFT seconds of each completed turn, failures, wall seconds)."""
    ttfts: list[float] = []
    slow: list[tuple[float, str, str]] = []
    failures = 0
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def user(chats: list[list[Turn]]) -> None:
            nonlocal failures
            for chat in chats:
                for turn in chat:
                    body = {
                        "model": turn.model,
                        "messages": turn.messages,
                        "options": {"num_predict": turn.num_predict},
                    }
                    started = time.perf_counter()
                    first = 0.0
                    async with session.post(url + "/api/chat", json=body) as reply:
                        if reply.status != 200:
                            failures += 1
                            await reply.read()
                            continue
                        async for line in reply.content:
                            if line.strip() and not first:
                                first = time.perf_counter() - started
                    ttfts.append(first)
                    slow.append((first, turn.model, reply.headers.get("X-Herd-Node", "")))
                    await asyncio.sleep(turn.think_s)

        started = time.perf_counter()
        await asyncio.gather(*(user(chats) for chats in plan))
        if os.environ.get("BENCH_SLOWEST"):  # which turns make the p95
            for first, model, node in sorted(slow, reverse=True)[:12]:
                print(f"    {first * 1000:6.0f} ms  {model:20} {node}", file=sys.stderr)
        return ttfts, failures, time.perf_counter() - started


def node_counters(nodes: list[tuple[str, str]]) -> dict[str, int]:
    totals = {"loads": 0, "reloads": 0, "evictions": 0}
    for _, url in nodes:
        stats = httpx.get(url + "/_sim/stats").json()
        for key in totals:
            totals[key] += stats.get(key, 0)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer users and conversations")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--only", action="append", choices=list(STRATEGIES), help="run only these strategies"
    )
    parser.add_argument(
        "--agentless",
        action="store_true",
        help="no vram:<GiB> tags: herd learns node memory from /api/ps alone",
    )
    parser.add_argument(
        "--role-affinity",
        choices=["best-fit", "big-first"],
        help="herd default with this role-affinity mode (item 8's comparison)",
    )
    args = parser.parse_args()
    users, conversations = (8, 3) if args.quick else (12, 5)
    plan = workload(users, conversations, args.seed)
    turns = sum(len(chat) for chats in plan for chat in chats)
    rows = []
    strategies = {k: v for k, v in STRATEGIES.items() if not args.only or k in args.only}
    if args.role_affinity:
        strategies = {
            f"herd {args.role_affinity}": {"role-affinity": {"mode": args.role_affinity}},
            **{k: v for k, v in strategies.items() if k != "herd default"},
        }
    for strategy, signals in strategies.items():
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            with (
                fleet(workdir) as nodes,
                router(workdir, nodes, signals, args.agentless) as url,
            ):
                ttfts, failures, wall = asyncio.run(run_workload(url, plan))
                counters = node_counters(nodes)
        rows.append(
            [
                strategy,
                f"{percentile(ttfts, 0.5) * 1000:.0f}",
                f"{percentile(ttfts, 0.95) * 1000:.0f}",
                counters["loads"],
                counters["reloads"],
                counters["evictions"],
                f"{len(ttfts) / wall:.2f}",
                failures,
            ]
        )
        print(f"  {strategy}: done in {wall:.0f} s", file=sys.stderr)
    print(
        f"\n{'agentless, ' if args.agentless else ''}{len(NODES)} nodes "
        f"({', '.join(f'{n} {v} GiB' for n, v, *_ in NODES)}), "
        f"{len(MODELS)} models, {users} users, {turns} chat turns, seed {args.seed}"
    )
    print(
        table(
            [
                "strategy",
                "TTFT p50 ms",
                "TTFT p95 ms",
                "cold loads",
                "reloads",
                "evictions",
                "req/s",
                "failed",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
