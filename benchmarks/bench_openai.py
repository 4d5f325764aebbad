"""What the OpenAI API costs: translation speed, and /v1 added latency vs the same node direct.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_openai.py [--quick]

1. Translation, in process: Ollama NDJSON chunks in, OpenAI SSE events out (chunks per
   second), beside the Ollama path's own per-line work (the model-name rewrite) and a bare
   msgspec decode of the same line, for scale.
2. Added latency: one emulated node (herd-sim) and one router (herd) as separate processes
   on free 127.0.0.1 ports; sequential streamed chats to the node's /api/chat directly, to
   the router's /api/chat and to the router's /v1/chat/completions (SSE), then the same
   without streaming; p50/p99 and what the router adds; router CPU per request.
3. Throughput at 16 and 64 concurrent paced streams: the node direct vs /v1 through the router.
Every loop is bounded in count and time; both processes stop at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import msgspec

sys.path.insert(0, str(Path(__file__).parent))

from _harness import cpu_seconds, percentile, router, sim_node, table
from herd._engine.node_lines import model_renamer
from herd.protocol.ollama_replies import decode_chat_chunk
from herd.protocol.openai_stream import ChatStream

MODEL = "llama3.2:3b"
# The node serves 256 at once; say so, or the router queues beyond its default of 4 slots.
ROUTER_YAML = "routing: {default_num_parallel: 256}\n"
PROMPT = [{"role": "user", "content": "benchmark"}]


def _lines(tokens: int) -> list[bytes]:
    head = {"model": MODEL, "created_at": "2025-07-07T20:22:19.184Z"}
    lines = [
        msgspec.json.encode(
            {**head, "message": {"role": "assistant", "content": f" token{i}"}, "done": False}
        )
        for i in range(tokens)
    ]
    final = {**head, "message": {"role": "assistant", "content": ""}, "done": True}
    final.update(done_reason="stop", prompt_eval_count=12, eval_count=tokens, eval_duration=9)
    return [*lines, msgspec.json.encode(final)]


def _rate(work: Callable[[list[bytes]], object], lines: list[bytes], budget: float) -> float:
    """Chunks per second of ``work`` over repeated streams of ``lines``, for ``budget`` s."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        work(lines)
        done += len(lines)
    return done / (time.perf_counter() - start)


def translation(budget: float) -> None:
    lines = _lines(256)
    thinking = [
        line.replace(b'"content":" token', b'"content":"","thinking":" token') for line in lines
    ]
    rename = model_renamer(MODEL, "gpt-4o-mini")
    assert rename is not None

    def sse(stream_lines: list[bytes]) -> None:
        feed = ChatStream("gpt-4o-mini", include_usage=True).feed
        for line in stream_lines:
            feed(line)

    def ollama(stream_lines: list[bytes]) -> None:
        for line in stream_lines:
            rename(line)

    def decode(stream_lines: list[bytes]) -> None:
        for line in stream_lines:
            decode_chat_chunk(line)

    base = _rate(decode, lines, budget)
    rows = []
    for name, work, data in [
        ("msgspec decode only (scale)", decode, lines),
        ("Ollama path: model rename", ollama, lines),
        ("OpenAI SSE: content chunks", sse, lines),
        ("OpenAI SSE: thinking chunks", sse, thinking),
    ]:
        rate = base if work is decode else _rate(work, data, budget)
        rows.append([name, f"{rate:,.0f}", f"{1e6 / rate:.2f}", f"{rate / base:.2f}x"])
    print("\nTranslation, one core, 256-token streams (Ollama NDJSON line in)")
    print(table(["work per chunk", "chunks/s", "us/chunk", "vs decode"], rows))


async def _ollama_chat(session: aiohttp.ClientSession, url: str, stream: bool) -> int:
    body = {"model": MODEL, "messages": PROMPT, "stream": stream}
    async with session.post(url + "/api/chat", json=body) as reply:
        if reply.status != 200:
            raise RuntimeError(f"{reply.status}: {await reply.text()}")
        return len([line async for line in reply.content if line.strip()])


async def _openai_chat(session: aiohttp.ClientSession, url: str, stream: bool) -> int:
    body = {"model": MODEL, "messages": PROMPT, "stream": stream}
    async with session.post(url + "/v1/chat/completions", json=body) as reply:
        if reply.status != 200:
            raise RuntimeError(f"{reply.status}: {await reply.text()}")
        if not stream:
            return len(await reply.read())
        # Read to the end (past [DONE]) so the connection is kept alive, as for NDJSON.
        return len([line async for line in reply.content if line.startswith(b"data: ")])


async def _sequential(call: Callable, url: str, stream: bool, count: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            await call(session, url, stream)
        times = []
        for _ in range(count):
            start = time.perf_counter()
            await call(session, url, stream)
            times.append(time.perf_counter() - start)
    return times


def latency(tokens: int, count: int) -> None:
    sim_args = ["--num-parallel", "256", "--gen-tps", "0", "--reply-tokens", str(tokens)]
    rows: list[list[object]] = []
    cpu_rows: list[list[object]] = []
    with (
        sim_node(*sim_args) as (node_url, _),
        router([node_url], ROUTER_YAML) as (router_url, proc),
    ):
        for stream in (True, False):
            mode = "streamed" if stream else "whole"
            direct = asyncio.run(_sequential(_ollama_chat, node_url, stream, count))
            runs = {}
            for label, call in (("/api/chat", _ollama_chat), ("/v1/chat", _openai_chat)):
                cpu0 = cpu_seconds(proc.pid)
                runs[label] = asyncio.run(_sequential(call, router_url, stream, count))
                cpu_ms = (cpu_seconds(proc.pid) - cpu0) / (count + 5) * 1000
                cpu_rows.append([f"{label} {mode}", f"{cpu_ms:.2f}"])
            for q in (0.5, 0.99):
                d = percentile(direct, q) * 1000
                o = percentile(runs["/api/chat"], q) * 1000
                v = percentile(runs["/v1/chat"], q) * 1000
                rows.append(
                    [
                        f"{mode} p{int(q * 100)} (ms)",
                        f"{d:.2f}",
                        f"{o:.2f} ({o - d:+.2f})",
                        f"{v:.2f} ({v - d:+.2f})",
                        f"{v / d:.2f}x",
                    ]
                )
    print(f"\nUnpaced node, {tokens} tokens per reply, {count} sequential chats per column")
    headers = ["measure", "node direct", "router /api/chat", "router /v1", "/v1 vs direct"]
    print(table(headers, rows))
    print(table(["router path", "router CPU ms/request"], cpu_rows))


async def _concurrent(call: Callable, url: str, level: int, total: int) -> tuple[int, float]:
    done = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=level)) as session:
        stop_at = time.perf_counter() + 120

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at and not queue.empty():
                queue.get_nowait()
                await call(session, url, True)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(level)))
        return done, time.perf_counter() - start


def throughput(tokens: int, gen_tps: float, per_level: int) -> None:
    args = ["--num-parallel", "256", "--gen-tps", str(gen_tps), "--reply-tokens", str(tokens)]
    rows = []
    with sim_node(*args) as (node_url, _), router([node_url], ROUTER_YAML) as (router_url, proc):
        for level in (16, 64):
            done_d, secs_d = asyncio.run(_concurrent(_ollama_chat, node_url, level, per_level))
            cpu0 = cpu_seconds(proc.pid)
            done_r, secs_r = asyncio.run(_concurrent(_openai_chat, router_url, level, per_level))
            cpu_ms = (cpu_seconds(proc.pid) - cpu0) / max(done_r, 1) * 1000
            rps_d, rps_r = done_d / secs_d, done_r / secs_r
            rows.append(
                [level, f"{rps_d:.1f}", f"{rps_r:.1f}", f"{rps_r / rps_d:.3f}x", f"{cpu_ms:.2f}"]
            )
    print(f"\nPaced node ({gen_tps:g} tokens/s per stream, {tokens} tokens), {per_level} per level")
    headers = ["concurrency", "node direct req/s", "router /v1 req/s", "ratio", "CPU ms/req"]
    print(table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter loops")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per reply")
    parser.add_argument("--gen-tps", type=float, default=50.0, help="node pacing per stream")
    args = parser.parse_args()
    translation(0.5 if args.quick else 2.0)
    latency(args.tokens, 100 if args.quick else 300)
    throughput(args.tokens, args.gen_tps, 128 if args.quick else 384)


if __name__ == "__main__":
    main()
