"""Soak: mixed load on a router in front of three emulated nodes, with random node faults.

Run by hand (not in CI):  .venv/bin/python benchmarks/soak.py [--seconds 600] [--workers 16]

Starts three herd-sim processes and one herd router as separate processes on free
127.0.0.1 ports. Workers send a mix of Ollama and OpenAI requests (streamed and not,
chat, generate, embeddings, tags) for ``--seconds``; meanwhile a fault task hits one random
node every few seconds: failures and hangs before the first byte, deaths mid-stream, a
silent spell, or the node process killed and started again (a flap).

Reported: requests by outcome; **lost** = requests that got no successful answer although
their failure came before the first byte (the router must retry those: this must be 0);
broken mid-stream (an in-band error is the correct answer there); the router's RSS, open
file descriptors and TCP connections before the load, at peak, and after it drained.
Every loop is bounded in count and time; every process stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).parent))

from _harness import BIN, free_port, router, table, wait_http

MODEL = "llama3.2:3b"
EMBED = "nomic-embed-text"
ROUTER_YAML = (
    "routing: {first_byte_timeout: 3.0, max_retries: 3, retry_backoff_s: 0.05}\n"
    "fleet: {poll_interval: 1.0}\n"
)


class SimProcess:
    """One herd-sim process that can be killed and started again on its port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [str(BIN / "herd-sim"), "--port", str(self.port), "--name", self.name]
        args += ["--gen-tps", "400", "--reply-tokens", "40", "--num-parallel", "16"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url + "/")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _requests() -> list[tuple[str, dict, bool]]:
    chat = [{"role": "user", "content": "soak"}]
    return [
        ("/api/chat", {"model": MODEL, "messages": chat, "stream": True}, True),
        ("/api/chat", {"model": MODEL, "messages": chat, "stream": False}, False),
        ("/api/generate", {"model": MODEL, "prompt": "soak", "stream": True}, True),
        ("/v1/chat/completions", {"model": MODEL, "messages": chat, "stream": True}, True),
        ("/v1/chat/completions", {"model": MODEL, "messages": chat}, False),
        ("/api/embed", {"model": EMBED, "input": "soak"}, False),
    ]


async def one_request(
    session: aiohttp.ClientSession, url: str, outcomes: Counter[str], rng: random.Random
) -> None:
    if rng.random() < 0.05:
        async with session.get(url + "/api/tags") as reply:
            outcomes["ok" if reply.status == 200 else f"tags {reply.status}"] += 1
        return
    path, body, streamed = rng.choice(_requests())
    try:
        async with session.post(url + path, json=body) as reply:
            if reply.status != 200:
                outcomes["lost"] += 1  # failed before its first byte and was not retried
                outcomes[f"lost {reply.status} {(await reply.text())[:80]}"] += 1
                return
            text = (await reply.read()).decode()
    except (TimeoutError, aiohttp.ClientError) as exc:
        outcomes[f"client error {type(exc).__name__}"] += 1
        return
    if not text.strip():
        outcomes["empty 200"] += 1
    elif streamed and ('"error"' in text.splitlines()[-1] or "event: error" in text):
        outcomes["broken mid-stream (in-band error)"] += 1
    else:
        outcomes["ok"] += 1


async def worker(url: str, until: float, outcomes: Counter[str], seed: int) -> None:
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < until:
            await one_request(session, url, outcomes, rng)


async def faults(sims: list[SimProcess], until: float, done: Counter[str], seed: int) -> None:
    rng = random.Random(seed)
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < until - 5:
            await asyncio.sleep(rng.uniform(2.0, 5.0))
            sim = rng.choice(sims)
            kind = rng.choice(["fail", "hang", "die-first", "die-mid", "silent", "flap"])
            done[kind] += 1
            with contextlib.suppress(aiohttp.ClientError):
                if kind == "fail":
                    spec = {"count": rng.randint(1, 3), "status": 500}
                    await session.post(sim.url + "/_sim/fail", json=spec)
                elif kind == "hang":
                    spec = {"count": 2, "seconds": 6.0}
                    await session.post(sim.url + "/_sim/hang", json=spec)
                elif kind == "die-first":
                    await session.post(sim.url + "/_sim/die", json={"count": 2, "after_chunks": 0})
                elif kind == "die-mid":
                    await session.post(sim.url + "/_sim/die", json={"count": 1, "after_chunks": 3})
                elif kind == "silent":
                    await session.post(sim.url + "/_sim/silent", json={"seconds": 4.0})
                    await asyncio.sleep(4.0)
                    await session.post(sim.url + "/_sim/silent", json={"seconds": 0})
                else:
                    await asyncio.to_thread(sim.stop)
                    await asyncio.sleep(rng.uniform(0.5, 3.0))
                    await asyncio.to_thread(sim.start)


def sample(proc: psutil.Process) -> dict[str, int]:
    return {
        "rss_mb": proc.memory_info().rss // (1024 * 1024),
        "fds": proc.num_fds(),
        "tcp": len(proc.net_connections(kind="tcp")),
    }


async def watch(proc: psutil.Process, until: float, peak: dict[str, int]) -> None:
    while time.monotonic() < until:
        for key, value in sample(proc).items():
            peak[key] = max(peak.get(key, 0), value)
        await asyncio.sleep(1.0)


async def soak(url: str, sims: list[SimProcess], pid: int, seconds: float, workers: int) -> None:
    proc = psutil.Process(pid)
    async with aiohttp.ClientSession() as session:  # warm up: every model loaded once
        for path, body, _ in _requests():
            async with session.post(url + path, json=body) as reply:
                await reply.read()
    before = sample(proc)
    outcomes: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    peak: dict[str, int] = {}
    started = time.monotonic()
    until = started + seconds
    await asyncio.gather(
        watch(proc, until, peak),
        faults(sims, until, injected, seed=7),
        *(worker(url, until, outcomes, seed=i) for i in range(workers)),
    )
    elapsed = time.monotonic() - started
    for sim in sims:  # every node back and healthy before "after"
        if sim.proc is None or sim.proc.poll() is not None:
            sim.start()
    await asyncio.sleep(5.0)
    after = sample(proc)
    total = sum(v for k, v in outcomes.items() if not k.startswith("lost "))
    print(f"\n{total} requests in {elapsed:.0f} s ({total / elapsed:.1f}/s), {workers} workers")
    print("faults injected:", dict(injected))
    print(table(["outcome", "requests"], [[k, v] for k, v in sorted(outcomes.items())]))
    rows = [[key, before[key], peak.get(key, 0), after[key]] for key in before]
    print(table(["router", "before", "peak", "after"], rows))
    print(json.dumps({"outcomes": outcomes, "before": before, "peak": peak, "after": after}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600.0, help="load duration (max 900)")
    parser.add_argument("--workers", type=int, default=16, help="concurrent clients")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 10.0), 900.0)
    sims = [SimProcess(f"n{i}") for i in range(3)]
    try:
        for sim in sims:
            sim.start()
        with router([s.url for s in sims], ROUTER_YAML) as (url, proc):
            asyncio.run(soak(url, sims, proc.pid, seconds, max(1, min(args.workers, 64))))
    finally:
        for sim in sims:
            sim.stop()


if __name__ == "__main__":
    main()
