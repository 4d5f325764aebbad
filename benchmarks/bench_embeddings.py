"""What an embeddings answer costs on its way back: OpenAI-compatible server -> OpenAI client.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_embeddings.py [--quick]

In process, per answer, for 1 to 256 vectors of 384 floats (all-MiniLM's size):
  - once: what herd does now: the server's JSON decoded into the canonical struct
    (``OllamaEmbedReply``), rendered from it as the client's JSON;
  - via Ollama JSON: the way before (kept here as the same-run baseline): decoded into
    dicts, encoded as Ollama's ``/api/embed`` answer, decoded again and rendered.
Both give the same bytes (checked). Median of rounds, each bounded in time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).parent))

from _harness import table
from herd.protocol.openai_replies import embedding_list
from herd.protocol.openai_upstream_embeddings import ollama_embed_from_openai

DIMENSIONS = 384
_decode, _encode = msgspec.json.decode, msgspec.json.encode


def server_answer(count: int, rng: random.Random) -> bytes:
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": [rng.uniform(-1, 1) for _ in range(DIMENSIONS)],
        }
        for i in range(count)
    ]
    usage = {"prompt_tokens": 7 * count, "total_tokens": 7 * count}
    return _encode({"object": "list", "data": data, "model": "minilm", "usage": usage})


def once(raw: bytes) -> bytes:
    return embedding_list(ollama_embed_from_openai(raw, "minilm"), "minilm")


def via_ollama_json(raw: bytes) -> bytes:
    data = _decode(raw)
    items = sorted(data["data"], key=lambda item: item.get("index", 0))
    out = {"model": "minilm", "embeddings": [item["embedding"] for item in items]}
    if (data.get("usage") or {}).get("prompt_tokens"):
        out["prompt_eval_count"] = data["usage"]["prompt_tokens"]
    return embedding_list(_encode(out), "minilm")


def _per_call(work: Callable[[bytes], bytes], raw: bytes, budget: float) -> float:
    calls, spent = 0, 0.0
    while spent < budget:
        started = time.perf_counter()
        work(raw)
        spent += time.perf_counter() - started
        calls += 1
    return spent / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter rounds")
    args = parser.parse_args()
    budget, rounds = (0.15, 3) if args.quick else (0.5, 5)
    rng = random.Random(7)
    rows = []
    for count in (1, 16, 256):
        raw = server_answer(count, rng)
        assert _decode(once(raw))["data"] == _decode(via_ollama_json(raw))["data"]
        new: list[float] = []
        old: list[float] = []
        for _ in range(rounds):  # alternating, so a busy machine slows both alike
            new.append(_per_call(once, raw, budget))
            old.append(_per_call(via_ollama_json, raw, budget))
        n, o = statistics.median(new) * 1e6, statistics.median(old) * 1e6
        rows.append([count, f"{len(raw) / 1024:.0f} KB", f"{o:,.0f}", f"{n:,.0f}", f"{n / o:.2f}x"])
    print("Embeddings answer, OpenAI-compatible server -> OpenAI client (us per answer):")
    print(table(["vectors", "answer", "via Ollama JSON", "once", "ratio"], rows))


if __name__ == "__main__":
    main()
