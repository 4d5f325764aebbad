"""How long one routing decision takes: all eight built-in signals over 3 to 200 nodes.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_scheduler.py [--quick]
[--nodes 50 ...] [--count [--against DIR ...]]

Builds node snapshots (every node has the model on disk; a third have it loaded, some are
busy, memory is reported) and the signals from the built-in plugins with their default
weights, teaches the learning signals a few hundred traces, then times ``Ranker.rank``
(candidates -> prepare -> reject -> score -> order) for a chat request that belongs to a
known conversation, as this thread's CPU time per decision (other busy processes on the
machine do not count). The signals cache per-node values by node view revision, so each
node count is timed with nothing changed between two decisions and with 1 or 5 (and n/10)
nodes changed in between: on each, a request started or finished, the finished one's
trace learned by the signals (what a loaded router sees; the changes are not timed).
Target (issue 16): at most 50 microseconds at 50 nodes. How the caches work, and the
figures each step reached: docs/routing.md ("Cost and quality") and the stops' notes.

``--count`` counts instructions instead of timing (needs valgrind, its headers and a C
compiler): each case runs in a child process under callgrind, with collection switched on
only around ``Ranker.rank`` (a ten-line C helper, compiled into a temporary directory, makes
callgrind's client requests), so the churn between decisions is not counted. Two runs of
the same code agree within 1%, where timed p50s on this VM swing by half. ``--against DIR``
counts another checkout too (run with ``DIR/.venv``; it must have this layout:
``herd._engine.scheduling.ranking``).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import herd
from _harness import checkout_bin, table
from herd import InferenceRequest, LoadedModel, ModelEntry, NodeView, RequestTrace
from herd._engine.config import load_settings
from herd._engine.gateway import Gateway
from herd._engine.plugins import make_plugin_manager
from herd._engine.scheduling.ranking import Ranker

MODEL = "qwen2.5:7b"
GIB = 1024**3


def make_views(count: int, rng: random.Random) -> list[NodeView]:
    views = []
    for index in range(count):
        view = NodeView(
            name=f"n{index}",
            url=f"http://10.0.{index // 250}.{index % 250}:11434",
            status="online",
            capabilities=frozenset({"text", "embed"}),
            vram_total=rng.choice((8, 12, 24, 48, 96)) * GIB,
            num_parallel=rng.choice((1, 2, 4)),
        )
        for name, size in ((MODEL, 4.7), ("llama3.2:3b", 2.0), ("qwen3:14b", 9.3)):
            view.models[name] = ModelEntry(name=name, key=name, size=int(size * 1e9))
        if index % 3 == 0:
            view.loaded[MODEL] = LoadedModel(
                name=MODEL, key=MODEL, size=int(5.2e9), size_vram=int(5.2e9), context_length=4096
            )
            busy = rng.randint(0, 4)
            view.in_flight = view.in_flight_by_model[MODEL] = busy
        view.online_since = time.time() - 3600
        views.append(view)
    return views


def finished(index: int, node: str, rng: random.Random) -> RequestTrace:
    return RequestTrace(
        request_id=str(index),
        api="ollama",
        endpoint="chat",
        kind="text",
        model=MODEL,
        served_model=MODEL,
        node=node,
        ttft_ms=rng.uniform(80, 400),
        latency_ms=rng.uniform(2000, 9000),
        session=f"chat:{index % 50}",
    )


def teach(gateway: Gateway, views: list[NodeView], rng: random.Random) -> None:
    for index in range(400):
        gateway.finish(finished(index, rng.choice(views).name, rng))


def churn(gateway: Gateway, views: list[NodeView], changed: int, rng: random.Random) -> None:
    """Between two decisions: on ``changed`` nodes a request starts or one finishes (its
    trace learned by the signals, as the gateway does), as under load."""
    for view in rng.sample(views, changed):
        busy = view.in_flight_by_model.get(MODEL, 0)
        if busy and rng.random() < 0.5:
            view.in_flight -= 1
            view.in_flight_by_model[MODEL] = busy - 1
            gateway.finish(finished(rng.randrange(10**6), view.name, rng))
        else:
            view.in_flight += 1
            view.in_flight_by_model[MODEL] = busy + 1


def _setup(count: int) -> tuple[Gateway, list[NodeView], Ranker, InferenceRequest, random.Random]:
    rng = random.Random(count)
    gateway = Gateway(load_settings(None, env={}), make_plugin_manager(None, env={}))
    views = make_views(count, rng)
    teach(gateway, views, rng)
    ranker = Ranker(gateway.signals)
    request = InferenceRequest(
        api="ollama",
        endpoint="chat",
        kind="text",
        model=MODEL,
        model_key=MODEL,
        body={},
        stream=True,
        prompt_tokens=900,
        session="chat:7",
        follow_up=True,
    )
    for _ in range(50):
        ranker.rank(request, views)
    return gateway, views, ranker, request, rng


def measure(count: int, changed: int, rounds: int) -> tuple[float, float, float]:
    """Best, median and 90th percentile microseconds per decision over ``rounds`` batches,
    with ``changed`` nodes changing between two decisions (not timed)."""
    gateway, views, ranker, request, rng = _setup(count)
    batch = max(5, 2000 // count)
    clock = time.thread_time_ns
    samples = []
    for _ in range(rounds):
        spent = 0
        for _ in range(batch):
            if changed:
                churn(gateway, views, changed, rng)
            started = clock()
            decision = ranker.rank(request, views)
            spent += clock() - started
        samples.append(spent / batch / 1000)
    assert decision.ranked, "every node should be a candidate"
    samples.sort()
    return samples[0], samples[len(samples) // 2], samples[int(len(samples) * 0.9)]


_TOGGLE_C = """#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void cg_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
"""


def _count_child(count: int, changed: int, decisions: int) -> None:
    """Under callgrind: ``decisions`` decisions, collecting only inside ``rank``."""
    callgrind = ctypes.CDLL(os.environ["HERD_BENCH_TOGGLE_LIB"])
    gateway, views, ranker, request, rng = _setup(count)
    toggle, rank = callgrind.cg_toggle, ranker.rank
    callgrind.cg_start()
    for _ in range(decisions):
        if changed:
            churn(gateway, views, changed, rng)
        toggle()
        rank(request, views)
        toggle()


def _count(python: Path, library: Path, count: int, changed: int, decisions: int) -> float:
    """Instructions per decision, counted by callgrind in a child process."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no"]
        command += [f"--callgrind-out-file={out}", str(python), __file__, "--count-child"]
        command += [str(count), str(changed), str(decisions)]
        env = {**os.environ, "HERD_BENCH_TOGGLE_LIB": str(library), "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            sys.exit(f"callgrind run failed:\n{done.stderr[-3000:]}")
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1]) / decisions
    raise RuntimeError("callgrind wrote no totals")


def count_main(nodes: list[int], against: list[str]) -> None:
    if not (shutil.which("valgrind") and shutil.which("cc")):
        sys.exit("--count needs valgrind and a C compiler (Debian: apt install valgrind gcc)")
    here = Path(sys.executable)
    pythons = [("this checkout", here)]
    pythons += [(d, checkout_bin(d) / "python") for d in against]
    with tempfile.TemporaryDirectory() as work:
        source, library = Path(work) / "toggle.c", Path(work) / "libtoggle.so"
        source.write_text(_TOGGLE_C)
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", library, source], check=True)
        rows = []
        for count in nodes:
            decisions = 400 if count <= 50 else 100
            for changed in sorted({0, 1, 5 if count >= 10 else 0}):
                row: list[object] = [count, changed]
                for _, python in pythons:
                    row.append(f"{_count(python, library, count, changed, decisions) / 1000:.1f}k")
                rows.append(row)
    print("Instructions per decision, counted by callgrind inside Ranker.rank only:")
    print(table(["nodes", "changed", *(name for name, _ in pythons)], rows))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--count-child":
        _count_child(*(int(a) for a in sys.argv[2:]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--nodes", type=int, nargs="*", default=[3, 10, 50, 200])
    parser.add_argument("--count", action="store_true", help="count instructions (callgrind)")
    parser.add_argument("--against", action="append", default=[], metavar="DIR")
    args = parser.parse_args()
    if args.count:
        count_main(args.nodes, args.against)
        return
    print("herd from", herd.__file__)
    gateway = Gateway(load_settings(None, env={}), make_plugin_manager(None, env={}))
    print("signals:", ", ".join(f"{s.name} x{s.weight:g}" for s in gateway.signals))
    rows = []
    for count in args.nodes:
        for changed in sorted({0, 1, 5 if count >= 10 else 0, count // 10}):
            best, p50, p90 = measure(count, changed, 15 if args.quick else 60)
            rows.append([count, changed, f"{best:.1f}", f"{p50:.1f}", f"{p90:.1f}"])
    print("CPU time of this thread per decision (immune to other processes), with 'changed'")
    print("nodes seeing a request start or finish (its trace learned) between decisions:")
    print(table(["nodes", "changed", "best us", "p50 us", "p90 us"], rows))


if __name__ == "__main__":
    main()
