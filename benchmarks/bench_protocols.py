"""What the Anthropic and Responses fronts and the ``type: openai`` backend cost.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_protocols.py [--quick]

Same method as ``bench_openai.py``:

1. Translation, in process: one Ollama NDJSON chunk in, the client's SSE out (chunks per
   second) for Chat Completions, Anthropic Messages and Responses; and the reverse direction
   a ``type: openai`` node needs (OpenAI SSE in, Ollama NDJSON out). Then the whole protocol
   work of one streamed request per front (request decoded and translated, every line
   translated), best of many runs: what each front adds over Chat Completions.
2. Added latency: one emulated node (herd-sim) and one router (herd) as separate processes
   on free 127.0.0.1 ports; sequential chats, streamed then whole, to the node's /api/chat
   directly and to the router's /v1/chat/completions, /v1/messages and /v1/responses;
   p50/p99, what the router adds over the node direct, and over /v1/chat/completions.
3. The ``type: openai`` backend: the emulator as an OpenAI server (``--api openai``); its
   /v1/chat/completions direct vs the router's /api/chat and /v1/chat/completions to it.
Every loop is bounded in count and time; every process stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import msgspec

sys.path.insert(0, str(Path(__file__).parent))

from _harness import BIN, free_port, percentile, process, sim_node, table
from herd.protocol.anthropic import decode_anthropic
from herd.protocol.anthropic_replies import MessageStream
from herd.protocol.anthropic_requests import messages_to_ollama
from herd.protocol.openai import ChatCompletionRequest, decode_openai
from herd.protocol.openai_requests import chat_to_ollama
from herd.protocol.openai_stream import ChatStream
from herd.protocol.openai_upstream import NdjsonFromSse
from herd.protocol.responses import decode_responses, responses_to_ollama
from herd.protocol.responses_replies import ResponseStream, response_shell

MODEL = "llama3.2:3b"
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
    final.update(done_reason="stop", prompt_eval_count=12, eval_count=tokens)
    return [*lines, msgspec.json.encode(final)]


def _rate(work: Callable[[], object], chunks: int, budget: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        work()
        done += chunks
    return done / (time.perf_counter() - start)


def translation(budget: float) -> None:
    lines = _lines(256)
    sse = b"".join(ChatStream(MODEL, include_usage=True).feed(line) for line in lines)

    def feed_all(make: Callable[[], object]) -> Callable[[], None]:
        def work() -> None:
            feed = make().feed  # type: ignore[attr-defined]
            for line in lines:
                feed(line)

        return work

    def reverse() -> None:
        translator = NdjsonFromSse(MODEL)
        translator.feed(sse)
        translator.close()

    rows = []
    for name, work in [
        ("Chat Completions SSE", feed_all(lambda: ChatStream(MODEL))),
        ("Anthropic Messages SSE", feed_all(lambda: MessageStream(MODEL))),
        ("Responses SSE", feed_all(lambda: ResponseStream(response_shell("r", MODEL, {})))),
        ("openai node: SSE -> NDJSON", reverse),
    ]:
        rate = _rate(work, len(lines), budget)
        rows.append([name, f"{rate:,.0f}", f"{1e6 / rate:.2f}"])
    print("\nTranslation, one core, 256-token streams")
    print(table(["work per chunk", "chunks/s", "us/chunk"], rows))


def per_request(budget: float, tokens: int) -> None:
    """What each front costs per streamed request, in process: the request decoded and
    translated, then every node line translated (the router's whole protocol work)."""
    lines = _lines(tokens)
    bodies = {path: msgspec.json.encode(_body(path, True)) for path in _PATHS}

    def chat() -> None:
        parsed = decode_openai(bodies["/v1/chat/completions"], ChatCompletionRequest)
        chat_to_ollama(parsed, MODEL)
        feed = ChatStream(MODEL).feed
        for line in lines:
            feed(line)

    def messages() -> None:
        parsed = decode_anthropic(bodies["/v1/messages"])
        messages_to_ollama(parsed, MODEL)
        feed = MessageStream(MODEL).feed
        for line in lines:
            feed(line)

    def responses() -> None:
        parsed = decode_responses(bodies["/v1/responses"])
        responses_to_ollama(parsed, MODEL, [])
        feed = ResponseStream(response_shell("resp_1", MODEL, {})).feed
        for line in lines:
            feed(line)

    costs = {}
    for path, work in zip(_PATHS, (chat, messages, responses), strict=True):
        best = float("inf")
        deadline = time.perf_counter() + budget
        while time.perf_counter() < deadline:  # the best of many: the machine's noise is not ours
            start = time.perf_counter()
            for _ in range(20):
                work()
            best = min(best, (time.perf_counter() - start) / 20)
        costs[path] = best * 1e6
    base = costs["/v1/chat/completions"]
    rows = [[path, f"{us:.1f}", f"{us - base:+.1f}"] for path, us in costs.items()]
    print(f"\nProtocol work per streamed request ({tokens} tokens), one core, best of runs")
    print(table(["front", "us/request", "vs Chat Completions (us)"], rows))


_PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/responses")


def _body(path: str, stream: bool) -> dict[str, object]:
    if path == "/v1/messages":
        return {"model": MODEL, "max_tokens": 1024, "messages": PROMPT, "stream": stream}
    if path == "/v1/responses":
        return {"model": MODEL, "input": "benchmark", "stream": stream, "store": False}
    return {"model": MODEL, "messages": PROMPT, "stream": stream}


async def _call(session: aiohttp.ClientSession, url: str, path: str, stream: bool) -> int:
    async with session.post(url + path, json=_body(path, stream)) as reply:
        if reply.status != 200:
            raise RuntimeError(f"{path} {reply.status}: {await reply.text()}")
        return len([line async for line in reply.content if line.strip()])  # read to the end


async def _sequential(url: str, path: str, stream: bool, count: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            await _call(session, url, path, stream)
        times = []
        deadline = time.perf_counter() + 60
        for _ in range(count):
            start = time.perf_counter()
            await _call(session, url, path, stream)
            times.append(time.perf_counter() - start)
            if time.perf_counter() > deadline:
                break
    return times


@contextlib.contextmanager
def _router(nodes_yaml: str) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        config = Path(data) / "herd.yaml"
        config.write_text(
            f"data_dir: '{data}'\nlog_level: warning\nnodes:\n{nodes_yaml}\n{ROUTER_YAML}"
        )
        url = f"http://127.0.0.1:{port}"
        args = [str(BIN / "herd"), "--config", str(config), "--port", str(port)]
        with process(args, url + "/healthz"):
            time.sleep(1.0)  # the first poll
            yield url


def _rows(direct: list[float], runs: dict[str, list[float]], mode: str) -> list[list[object]]:
    rows = []
    for q in (0.5, 0.99):
        d = percentile(direct, q) * 1000
        chat = percentile(runs["/v1/chat/completions"], q) * 1000
        row: list[object] = [f"{mode} p{int(q * 100)} (ms)", f"{d:.2f}"]
        for path in runs:
            v = percentile(runs[path], q) * 1000
            extra = "" if path == "/v1/chat/completions" else f", {v - chat:+.2f} vs chat"
            row.append(f"{v:.2f} ({v - d:+.2f}{extra})")
        rows.append(row)
    return rows


def latency(tokens: int, count: int) -> None:
    sim_args = ["--num-parallel", "256", "--gen-tps", "0", "--reply-tokens", str(tokens)]
    paths = _PATHS
    rows: list[list[object]] = []
    node_yaml = "  - {{name: n0, url: '{}'}}"
    with sim_node(*sim_args) as (node_url, _), _router(node_yaml.format(node_url)) as url:
        for stream in (True, False):
            direct = asyncio.run(_sequential(node_url, "/api/chat", stream, count))
            runs = {path: asyncio.run(_sequential(url, path, stream, count)) for path in paths}
            rows += _rows(direct, runs, "streamed" if stream else "whole")
    print(f"\nUnpaced Ollama node, {tokens} tokens per reply, {count} sequential chats per column")
    print(table(["measure", "node /api/chat", *(f"router {p}" for p in paths)], rows))


def openai_node(tokens: int, count: int) -> None:
    sim_args = ["--api", "openai", "--num-parallel", "256", "--gen-tps", "0"]
    sim_args += ["--reply-tokens", str(tokens)]
    rows: list[list[object]] = []
    node_yaml = "  - {{name: n0, url: '{}', type: openai}}"
    with sim_node(*sim_args) as (node_url, _), _router(node_yaml.format(node_url)) as url:
        for stream in (True, False):
            mode = "streamed" if stream else "whole"
            direct = asyncio.run(_sequential(node_url, "/v1/chat/completions", stream, count))
            for path in ("/api/chat", "/v1/chat/completions"):
                times = asyncio.run(_sequential(url, path, stream, count))
                d, v = percentile(direct, 0.5) * 1000, percentile(times, 0.5) * 1000
                rows.append([f"{mode} {path}", f"{d:.2f}", f"{v:.2f}", f"{v - d:+.2f}"])
    print(f"\nOpenAI-compatible node (herd-sim --api openai), {tokens} tokens, p50 of {count}")
    print(table(["router path", "node /v1 direct", "through herd", "added (ms)"], rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter loops")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per reply")
    args = parser.parse_args()
    translation(0.5 if args.quick else 2.0)
    per_request(1.0 if args.quick else 3.0, args.tokens)
    latency(args.tokens, 100 if args.quick else 300)
    openai_node(args.tokens, 100 if args.quick else 300)


if __name__ == "__main__":
    main()
