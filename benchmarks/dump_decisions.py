"""Routing decisions over random fleets, as JSON, to show a change keeps them bit for bit.

Run by hand (not in CI), once per version, and compare the files:

    PYTHONPATH=/tmp/old/core:/tmp/old/plugins .venv/bin/python \
        benchmarks/dump_decisions.py > old.json     # git archive <commit> | tar -x -C /tmp/old
    .venv/bin/python benchmarks/dump_decisions.py > new.json && cmp old.json new.json

Fleets of 1 to 50 nodes with every kind of memory report, loaded, loading and warm
models, queues, learned slots, degraded, offline and draining nodes; signals taught from
random traces (failures included) under three configurations; six requests per fleet,
each routed one busier. Clocks are frozen, so the output depends on the code alone:
ranked order, totals, per-signal scores (as repr) and rejections.
"""

from __future__ import annotations

import json
import random
import sys
import time

import herd
from herd import InferenceRequest, LoadedModel, ModelEntry, NodeView, RequestTrace
from herd._engine.config import load_settings
from herd._engine.gateway import Gateway
from herd._engine.plugins import make_plugin_manager
from herd._engine.scheduling.ranking import Ranker

GIB = 1024**3
MODELS = [
    ("qwen2.5:7b", 4.7),
    ("llama3.2:3b", 2.0),
    ("qwen3:14b", 9.3),
    ("nomic:embed", 0.05),
    ("big:70b", 40.0),
]
NOW = 1.7e9
time.time = lambda: NOW  # frozen clocks: the signals' decay and warm windows
time.monotonic = lambda: 5000.0
# a weight of 0, best-fit role affinity, no prefer-loaded: one in a few fleets each
CONFIGS = [
    {},
    {"role-affinity": {"mode": "best-fit"}},
    {"wait-time": {"prefer_loaded": False}, "queue-depth": {"weight": 0}},
]


def add_memory(view: NodeView, rng: random.Random) -> None:
    kind = rng.choice(["vram", "ram", "seen", "none"])
    if kind == "vram":
        view.vram_total = rng.choice((8, 12, 24, 48, 96)) * GIB
        view.vram_used = rng.choice((0, 2 * GIB, 6 * GIB))
    elif kind == "ram":
        view.ram_total = rng.choice((16, 32, 64)) * GIB
        view.ram_available = rng.choice((0, 4 * GIB, 20 * GIB))
    elif kind == "seen":
        view.vram_seen = rng.choice((4, 10)) * GIB


def add_model(view: NodeView, name: str, size: float, rng: random.Random) -> None:
    if rng.random() < 0.8:
        view.models[name] = ModelEntry(name=name, key=name, size=int(size * 1e9))
    state = rng.random()
    if state < 0.3:
        resident = int(size * 1.1e9)
        view.loaded[name] = LoadedModel(
            name=name,
            key=name,
            size=resident,
            size_vram=resident if rng.random() < 0.85 else resident // 2,
            context_length=rng.choice((2048, 4096, 8192, 0)),
        )
        busy = rng.randint(0, 5)
        view.in_flight_by_model[name] = busy
        view.in_flight += busy
        if rng.random() < 0.3:
            view.queued_by_model[name] = rng.randint(0, 4)
    elif state < 0.4:
        view.loading[name] = rng.choice((0, 4096, 16384))
    elif state < 0.6:
        view.unloaded_at[name] = NOW - rng.choice((60, 3600))
    if rng.random() < 0.2:
        view.learned_parallel[name] = rng.randint(1, 3)


def fleet(rng: random.Random, count: int) -> list[NodeView]:
    views = []
    for index in range(count):
        view = NodeView(
            name=f"n{index}",
            url=f"http://node{index}",
            status=rng.choice(["online"] * 6 + ["degraded", "offline"]),
            capabilities=frozenset({"text", "embed"}),
            draining=rng.random() < 0.05,
            num_parallel=rng.choice((0, 1, 2, 4)),
            online_since=rng.choice((0.0, NOW - 3600, NOW - 30)),
        )
        add_memory(view, rng)
        for name, size in MODELS:
            add_model(view, name, size, rng)
        views.append(view)
    return views


def teach(gateway: Gateway, views: list[NodeView], rng: random.Random) -> None:
    for index in range(300):
        model = rng.choice(MODELS)[0]
        trace = RequestTrace(
            request_id=str(index),
            api="ollama",
            endpoint="chat",
            kind="text",
            model=model,
            served_model=model,
            node=rng.choice(views).name,
            ttft_ms=rng.uniform(80, 4000),
            latency_ms=rng.uniform(2000, 9000),
            load_ms=rng.choice((0.0, 0.0, 3000.0)),
            session=f"chat:{index % 20}",
            status=rng.choice(["completed"] * 5 + ["failed"]),
            http_status=rng.choice((200, 200, 500)),
        )
        gateway.finish(trace)


def request(rng: random.Random) -> InferenceRequest:
    model = rng.choice(MODELS)[0]
    return InferenceRequest(
        api="ollama",
        endpoint="chat",
        kind=rng.choice(["text", "text", "embed"]),
        model=model,
        model_key=model,
        body={},
        stream=True,
        prompt_tokens=rng.choice((100, 900, 6000)),
        session=f"chat:{rng.randint(0, 25)}",
        follow_up=rng.random() < 0.7,
        num_ctx=rng.choice((None, None, 2048, 8192)),
        num_predict=rng.choice((None, 100, -1)),
    )


def decisions(seed: int) -> list[dict]:
    rng = random.Random(seed)
    gateway = Gateway(load_settings(None, env={}), make_plugin_manager(None, env={}))
    config = CONFIGS[seed % len(CONFIGS)]
    for signal in gateway.signals:
        for field, value in config.get(signal.name, {}).items():
            if field == "weight":
                signal.weight = value
            else:
                setattr(signal.config, field, value)
    views = fleet(rng, rng.choice((1, 3, 10, 50)))
    teach(gateway, views, rng)
    ranker = Ranker(gateway.signals)
    out = []
    for _ in range(6):
        asked = request(rng)
        decision = ranker.rank(asked, views, asked.kind)
        scores = decision.scores
        out.append(
            {
                "ranked": [view.name for view in decision.ranked],
                "totals": {node: repr(total) for node, total in decision.totals.items()},
                "rejections": decision.rejections,
                "scores": {n: {s: repr(x) for s, x in row.items()} for n, row in scores.items()},
            }
        )
        if decision.ranked and rng.random() < 0.5:  # routed there: the node gets busier
            view = decision.ranked[0]
            view.in_flight += 1
            by_model = view.in_flight_by_model
            by_model[asked.model_key] = by_model.get(asked.model_key, 0) + 1
    return out


def main() -> None:
    print("herd from", herd.__file__, file=sys.stderr)
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    out = [row for seed in range(count) for row in decisions(seed)]
    json.dump(out, sys.stdout, sort_keys=True, indent=0)


if __name__ == "__main__":
    main()
