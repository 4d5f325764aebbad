"""What a streamed chat costs inside the router's ASGI app: the direct path vs Litestar's.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_asgi_path.py [--count 1000]

Starts one unpaced herd-sim process on a free 127.0.0.1 port and builds the router's app
in this process (no HTTP server in front: the app is called as uvicorn would call it).
Then, in alternating rounds, ``--count`` sequential streamed chats go through the inference
route served directly (``herd._engine.direct``) and through Litestar's routing,
middleware and exception layers (the same handler). The CPU time per request covers the
whole router except its HTTP server: routing, the exchange, the node client, the relay,
the trace and its sinks. Every answer is checked (status 200, every line relayed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import sim_node, table
from herd._engine.app import create_app
from herd._engine.config import load_settings

TOKENS = 32
BODY = b'{"model":"llama3.2:3b","messages":[{"role":"user","content":"benchmark"}],"stream":true}'


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/chat",
        "raw_path": b"/api/chat",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:11435"),
            (b"user-agent", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 11435),
        "state": {},
    }


async def _chat(app: Any) -> None:
    delivered = False
    status = 0
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.Future()  # the client stays: cancelled when the answer ends
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            body.append(message.get("body", b""))

    await app(_scope(), receive, send)
    lines = b"".join(body).count(b"\n")
    if status != 200 or lines != TOKENS + 1:
        raise RuntimeError(f"bad answer: {status}, {lines} lines: {b''.join(body)[:200]!r}")


async def _lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[dict[str, Any]]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].endswith("startup.complete"):
            started.set()
        elif message["type"].endswith("failed"):
            raise RuntimeError(message.get("message"))

    task = asyncio.create_task(app({"type": "lifespan", "state": {}}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(started.wait(), 60)
    return task, inbox


async def _run(node_url: str, count: int, rounds: int) -> dict[str, list[float]]:
    data = tempfile.mkdtemp()
    config = Path(data) / "herd.yaml"
    config.write_text(
        f"data_dir: '{data}'\nlog_level: warning\nnodes:\n  - {{name: n0, url: '{node_url}'}}\n"
        "routing: {default_num_parallel: 256, adaptive_concurrency: false}\n"
    )
    app = create_app(load_settings(str(config), env={}))
    task, inbox = await _lifespan(app)
    gate = app.asgi_handler
    direct = gate.app
    paths = {"direct": direct, "litestar": direct.app}
    if type(direct).__name__ != "DirectRoutes":
        raise SystemExit("this checkout has no direct path")
    for _ in range(30):  # warm up both paths: connections, caches
        for handler in paths.values():
            gate.app = handler
            await _chat(app)
    spent: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, handler in paths.items():
            gate.app = handler
            start = time.process_time()
            for _ in range(count):
                await _chat(app)
            spent[name].append((time.process_time() - start) / count * 1e6)
    gate.app = direct
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 60)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import uvloop

    sim = ["--num-parallel", "256", "--gen-tps", "0", "--reply-tokens", str(TOKENS)]
    with sim_node(*sim) as (node_url, _):
        spent = uvloop.run(_run(node_url, args.count, args.rounds))
    litestar = statistics.median(spent["litestar"])
    rows = [
        [
            name,
            " / ".join(f"{v:.0f}" for v in values),
            f"{statistics.median(values):.0f}",
            f"{statistics.median(values) / litestar:.2f}x",
        ]
        for name, values in spent.items()
    ]
    print(f"\n{args.rounds} rounds of {args.count} sequential streamed chats ({TOKENS} tokens)")
    print(table(["path", "CPU us/request per round", "median", "vs litestar"], rows))


if __name__ == "__main__":
    main()
