"""How long one routing decision takes: all eight built-in signals over 3 to 200 nodes.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_scheduler.py [--quick]

Builds node snapshots (every node has the model on disk; a third have it loaded, some are
busy, memory is reported) and the signals from the built-in plugins with their default
weights, teaches the learning signals a few hundred traces, then times ``Ranker.rank``
(candidates -> prepare -> reject -> score -> order) for a chat request that belongs to a
known conversation, as this thread's CPU time over batches of decisions, so other busy
processes on the machine do not count. Target (issue 16): at most 50 microseconds at 50
nodes. Measured on the 2-core development machine: about 130-200 (see docs/routing.md,
"Cost and quality", for where the time goes and why caching alone cannot close the gap).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import table
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


def teach(gateway: Gateway, views: list[NodeView], rng: random.Random) -> None:
    for index in range(400):
        view = rng.choice(views)
        gateway.finish(
            RequestTrace(
                request_id=str(index),
                api="ollama",
                endpoint="chat",
                kind="text",
                model=MODEL,
                served_model=MODEL,
                node=view.name,
                ttft_ms=rng.uniform(80, 400),
                latency_ms=rng.uniform(2000, 9000),
                session=f"chat:{index % 50}",
            )
        )


def measure(count: int, rounds: int) -> tuple[float, float, float]:
    """Best, median and 90th percentile microseconds per decision over ``rounds`` batches."""
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
    batch = max(5, 2000 // count)
    samples = []
    for _ in range(rounds):
        started = time.thread_time_ns()
        for _ in range(batch):
            decision = ranker.rank(request, views)
        samples.append((time.thread_time_ns() - started) / batch / 1000)
    assert decision.ranked, "every node should be a candidate"
    samples.sort()
    return samples[0], samples[len(samples) // 2], samples[int(len(samples) * 0.9)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    gateway = Gateway(load_settings(None, env={}), make_plugin_manager(None, env={}))
    print("signals:", ", ".join(f"{s.name} x{s.weight:g}" for s in gateway.signals))
    rows = []
    for count in (3, 10, 50, 200):
        best, p50, p90 = measure(count, 15 if args.quick else 60)
        rows.append([count, f"{best:.1f}", f"{p50:.1f}", f"{p90:.1f}", f"{p50 / count:.2f}"])
    print("CPU time of this thread per decision, over batches (immune to other processes):")
    print(table(["nodes", "best us", "p50 us", "p90 us", "p50 us/node"], rows))


if __name__ == "__main__":
    main()
