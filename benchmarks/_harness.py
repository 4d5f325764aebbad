"""Shared pieces of the benchmarks: processes on free 127.0.0.1 ports, load loops, tables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

BIN = Path(sys.executable).parent


def checkout_bin(checkout: str) -> Path:
    """Another checkout's ``.venv/bin`` (for ``--against DIR``); exits with one clear line
    when that checkout has no venv with herd installed in it."""
    bin_dir = Path(checkout).resolve() / ".venv" / "bin"
    if not (bin_dir / "herd").exists():
        sys.exit(f"{checkout}: no .venv/bin/herd (create that checkout's venv first)")
    return bin_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(
    url: str, timeout: float = 120.0, proc: subprocess.Popen[bytes] | None = None
) -> None:  # a busy shared host starts slowly
    """Wait until ``url`` answers; give up at once when ``proc`` (its server) has exited."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        if proc is not None and proc.poll() is not None:
            raise TimeoutError(f"{url} did not come up: its process exited ({proc.returncode})")
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up")


@contextlib.contextmanager
def process(
    args: list[str],
    ready_url: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process until the block ends; stop it whatever happens."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        try:
            wait_http(ready_url, ready_timeout, proc)
        except TimeoutError:
            proc.terminate()
            if proc.stderr is not None:  # say why it did not come up
                proc.wait(timeout=10)
                sys.stderr.write(proc.stderr.read().decode("utf-8", "replace")[-3000:])
            raise
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def sim_node(*extra: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([str(BIN / "herd-sim"), "--port", str(port), *extra], url + "/") as proc:
        yield url, proc


@contextlib.contextmanager
def router(
    node_urls: list[str], extra_yaml: str = "", bin_dir: Path = BIN
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A router in front of ``node_urls``; ``bin_dir`` picks another checkout's ``herd``."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        nodes = "\n".join(f"  - {{name: n{i}, url: '{u}'}}" for i, u in enumerate(node_urls))
        config = Path(data) / "herd.yaml"
        config.write_text(f"data_dir: '{data}'\nlog_level: warning\nnodes:\n{nodes}\n{extra_yaml}")
        url = f"http://127.0.0.1:{port}"
        with process(
            [str(bin_dir / "herd"), "--config", str(config), "--port", str(port)], url + "/healthz"
        ) as proc:
            yield url, proc


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of a process's threads, in seconds.

    The scheduler's own count, in nanoseconds (``/proc/PID/task/*/schedstat``), where the
    kernel keeps one: ``/proc/PID/stat``'s user and system times are sampled at each
    10 ms tick, so a round of 50 chats (35 ms of CPU) was off by a whole tick, a third of
    it, one way or the other. A thread that ended between two readings takes its time
    with it; the router's threads live as long as it does. Without schedstat, the ticks.
    """
    total, found = 0, False
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
                found = True
            except (OSError, ValueError, IndexError):
                continue  # (the thread ended meanwhile)
    if found:
        return total / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_split_and_switches(pid: int) -> tuple[float, float, int, int]:
    """A process's user and system seconds (10 ms ticks: read over a whole run, not a
    round) and its threads' voluntary and involuntary context switches.

    A faster router waits more often for a node's next token (each wait a sleep and a
    wake-up in the kernel), and a client on the same core preempts it: both show here,
    not in its own instructions.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    voluntary = involuntary = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                status = Path(f"/proc/{pid}/task/{task}/status").read_text()
            except OSError:
                continue  # (the thread ended meanwhile)
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
    return int(fields[11]) / ticks, int(fields[12]) / ticks, voluntary, involuntary


async def stream_chat(
    session: aiohttp.ClientSession, url: str, model: str
) -> tuple[float, float, int]:
    """One streamed chat; returns (time to first line, total time, lines)."""
    body = {"model": model, "messages": [{"role": "user", "content": "benchmark"}], "stream": True}
    start = time.perf_counter()
    first = 0.0
    lines = 0
    async with session.post(url + "/api/chat", json=body) as reply:
        if reply.status != 200:
            raise RuntimeError(f"{reply.status}: {await reply.text()}")
        async for line in reply.content:
            if line.strip():
                lines += 1
                if lines == 1:
                    first = time.perf_counter() - start
    return first, time.perf_counter() - start, lines


async def sequential(url: str, model: str, count: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            await stream_chat(session, url, model)
        times = []
        for _ in range(count):
            _, total, _ = await stream_chat(session, url, model)
            times.append(total)
    return times


async def concurrent(
    url: str, model: str, concurrency: int, total: int, deadline_s: float
) -> tuple[int, float]:
    """``total`` streamed chats, ``concurrency`` at a time; returns (completed, seconds)."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    done = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        stop_at = time.perf_counter() + deadline_s
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(i)

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await stream_chat(session, url, model)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
