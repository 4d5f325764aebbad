"""A router on a machine with a low limit on open files (a shell's ``ulimit -n``: 1,024 on
Linux, 256 on macOS). Each stream holds two file descriptors, the client's connection and
the node's, so herd raises its own limit as far as the system lets it, says at start-up
when what it got is low, and when it does run out, answers a clear 503 without holding it
against the node."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.core.processes import HerdProcess, clean_env, free_port

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc and sets RLIMIT_NOFILE"
)
CHAT = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def node(make_sim):
    # every stream at once, each long enough (20 tokens at 10/s: 2 s) for all to overlap
    return make_sim(name="n0", num_parallel=512, gen_tps=10.0, reply_tokens=20)


@pytest.fixture
def start(node, tmp_path: Path) -> Iterator:
    started: list[HerdProcess] = []

    def run(soft: int, hard: int) -> tuple[HerdProcess, str]:
        port = free_port()
        env = clean_env(
            HERD_NODES=f'[{{name: n0, url: "{node.url}"}}]',
            HERD_ROUTING__DEFAULT_NUM_PARALLEL="512",
        )
        args = ["--port", str(port), "--data-dir", str(tmp_path / f"d{port}")]
        router = HerdProcess(args, env, tmp_path / f"herd{port}.log", open_files=(soft, hard))
        started.append(router)
        url = f"http://127.0.0.1:{port}"
        router.wait_ready(url)
        return router, url

    yield run
    for router in started:
        router.stop()


def _soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit in /proc")


async def _burst(url: str, count: int) -> Counter:
    """``count`` streamed chats at once: how each ended."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one() -> str:
            try:
                reply = await client.post(url + "/api/chat", json=CHAT)
            except httpx.TransportError:
                return "connection error"  # refused at accept: no descriptor to take it
            if reply.status_code == 200 and '"done":true' in reply.text.replace(" ", ""):
                return "complete"
            if reply.status_code == 503 and "out of resources" in reply.json()["error"]:
                return "503 out of resources"
            return f"{reply.status_code} {reply.text[:200]}"

        return Counter(await asyncio.gather(*[one() for _ in range(count)]))


def test_the_router_raises_its_open_files_limit_and_serves_past_the_shells(start) -> None:
    router, url = start(128, 4096)
    assert _soft_limit(router.process.pid) == 4096
    # 150 streams need 300 descriptors: far past the 128 the router was started with
    assert asyncio.run(_burst(url, 150)) == Counter({"complete": 150})
    assert "ulimit" not in router.text()


def test_out_of_descriptors_is_the_routers_503_and_never_the_nodes_failure(start) -> None:
    router, url = start(96, 96)
    router.wait_for_line(r"may open only 96 files \(ulimit -n\), which is about 16 streams")
    ended = asyncio.run(_burst(url, 150))
    assert set(ended) <= {"complete", "503 out of resources", "connection error"}, ended
    assert ended["complete"] < 150  # (150 streams cannot fit in 96 descriptors)
    status = httpx.get(url + "/fleet/status", timeout=10).json()
    nodes = {node["name"]: node for node in status["nodes"]}
    assert nodes["n0"]["status"] == "online", nodes["n0"]
    assert "is offline" not in router.text()
    assert httpx.post(url + "/api/chat", json=CHAT, timeout=30).status_code == 200
