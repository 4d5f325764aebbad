"""The router's instructions per streamed request, counted (not timed), against other checkouts.

Run by hand (not in CI; needs valgrind):
    .venv/bin/python benchmarks/bench_instructions.py [--requests 200]
        [--against DIR [--against-yaml YAML]] ...

CPU time on a shared 2-core VM swings 10-30% from run to run, more than most changes to
the hot path are worth. Instructions do not: callgrind counts every user-space instruction
the router's main thread (the event loop: HTTP, routing, relaying, tracing) executes, and
two runs of the same code agree within about 1%. Kernel time (the socket calls) and the
cost of cache misses are not in the count; ``bench_gateway.py`` times those.

Each router (this checkout, then each ``--against`` checkout, run with that checkout's own
``.venv``) is started under callgrind in front of one emulated node, warmed up, left idle
for a while (its timers: node polls, flushes) and then sent ``--requests`` sequential
streamed chats. The idle rate times the run's length is taken off, so what is left is the
requests' own work. Other threads (DuckDB's inserts) are shown apart: callgrind slows the
router about 50 times, so each 1-second trace flush holds far fewer traces than it would,
and that count is inflated.

``--against-yaml`` is the YAML each ``--against`` router gets (an old checkout may not
know today's settings); by default the same as this checkout's: told 256 slots, adaptive
concurrency off, so no learning runs during the count.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import checkout_bin, free_port, process, sequential, sim_node, table

MODEL = "llama3.2:3b"
SLOTS = "routing: {default_num_parallel: 256, adaptive_concurrency: false}"
IDLE_S = 15.0


def _instructions(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"no totals in {dump}")


def _dumps(base: Path, part: int) -> dict[int, int]:
    """Instructions per thread in callgrind's dump number ``part`` (thread 1 is the loop)."""
    counts = {}
    for path in base.parent.glob(f"{base.name}.{part}-*"):
        counts[int(path.name.rsplit("-", 1)[1])] = _instructions(path)
    return counts


def count(venv: Path, node_url: str, extra_yaml: str, requests: int) -> dict[str, float]:
    """One router under callgrind: its instructions per request, net of its idle timers."""
    with tempfile.TemporaryDirectory() as data:
        config = Path(data) / "herd.yaml"
        config.write_text(
            f"data_dir: '{data}'\nlog_level: warning\n"
            f"nodes:\n  - {{name: n0, url: '{node_url}'}}\n{extra_yaml}\n"
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        out = Path(data) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--separate-threads=yes",
            str(venv / "bin" / "python"),
            str(venv / "bin" / "herd"),
            "--config",
            str(config),
            "--port",
            str(port),
        ]
        # imports under valgrind take a while
        with process(command, url + "/healthz", ready_timeout=600) as proc:

            def control(flag: str) -> None:
                subprocess.run(["callgrind_control", flag, str(proc.pid)], capture_output=True)

            asyncio.run(sequential(url, MODEL, 30))
            control("-z")
            time.sleep(IDLE_S)
            control("-d")
            control("-z")
            start = time.monotonic()
            asyncio.run(sequential(url, MODEL, requests))
            seconds = time.monotonic() - start
            control("-d")
            deadline = time.monotonic() + 60
            while len(_dumps(out, 2)) == 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            idle, busy = _dumps(out, 1), _dumps(out, 2)
    done = requests + 5  # sequential() warms up with 5 more
    idle_rate = idle.get(1, 0) / IDLE_S
    main = (busy.get(1, 0) - idle_rate * seconds) / done
    others = sum(v for k, v in busy.items() if k != 1) / done
    return {"main": main, "others": others, "idle_rate": idle_rate, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--against", action="append", default=[], help="another checkout")
    parser.add_argument("--against-yaml", default=SLOTS, help="YAML for --against routers")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per reply")
    parser.add_argument(
        "--gen-tps", type=float, default=0.0, help="node pacing per stream (0: unpaced)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian: apt install valgrind)")
    here = Path(__file__).resolve().parent.parent
    routers = [("this checkout", here / ".venv", SLOTS)]
    routers += [(a, checkout_bin(a).parent, args.against_yaml) for a in args.against]
    node_args = ["--num-parallel", "256", "--gen-tps", str(args.gen_tps)]
    node_args += ["--reply-tokens", str(args.tokens)]
    rows: list[list[object]] = []
    with sim_node(*node_args) as (url, _):
        results = [(name, count(venv, url, yaml, args.requests)) for name, venv, yaml in routers]
    first = results[0][1]["main"]
    for name, r in results:
        rows.append(
            [
                name,
                f"{r['main'] / 1e6:.3f} M",
                f"{r['main'] / first:.2f}x",
                f"{r['idle_rate'] / 1e6:.2f} M/s x {r['seconds']:.0f} s",
                f"{r['others'] / 1e6:.3f} M",
            ]
        )
    pacing = f"paced at {args.gen_tps:g} tokens/s" if args.gen_tps else "unpaced"
    print(
        f"\n{args.requests} sequential streamed chats, {args.tokens} tokens each, "
        f"one emulated node, {pacing}"
    )
    print(table(["router", "loop instructions/request", "ratio", "idle taken off", "others"], rows))


if __name__ == "__main__":
    main()
