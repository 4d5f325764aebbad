"""Real ``herd-node`` processes against emulated Ollama nodes and a router on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import ollama
import pytest

from tests.conftest import emulated

HERD_NODE = Path(sys.executable).with_name("herd-node")


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def spawn(tmp_path: Path):
    """Start herd-node with the given flags and HERD_NODE_* variables only."""
    started: list[subprocess.Popen[bytes]] = []

    def factory(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "OLLAMA_"))}
        log = (tmp_path / f"agent{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [str(HERD_NODE), *args], env={**clean, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        started.append(process)
        return process

    yield factory
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_environment_and_flags_are_both_honoured(make_sim, make_router, spawn) -> None:
    first, second = make_sim(name="first"), make_sim(name="second")
    router = make_router(auth={"node_token": "tok"})
    spawn(
        [],
        {
            "HERD_NODE_ROUTER": router.url,
            "HERD_NODE_OLLAMA": first.url,
            "HERD_NODE_TOKEN": "tok",
            "HERD_NODE_NAME": "from-env",
            "HERD_NODE_INTERVAL": "0.2",
            # a proxy (nothing listens) is not for the router and Ollama on this machine
            "HTTP_PROXY": "http://127.0.0.1:9",
            "http_proxy": "http://127.0.0.1:9",
        },
    )
    # every variable set wrongly, every flag right: the flags win
    spawn(
        [
            *("--router", router.url, "--ollama", second.url, "--token", "tok"),
            *("--name", "from-flags", "--interval", "0.2"),
        ],
        {
            "HERD_NODE_ROUTER": "http://127.0.0.1:9",
            "HERD_NODE_OLLAMA": "http://127.0.0.1:9",
            "HERD_NODE_TOKEN": "wrong",
            "HERD_NODE_NAME": "wrong",
        },
    )
    nodes = router.gateway.fleet.nodes
    wait_for(lambda: {"from-env", "from-flags"} <= set(nodes))
    wait_for(lambda: nodes["from-flags"].view.models and nodes["from-env"].view.models)
    assert nodes["from-env"].view.url == first.url
    assert nodes["from-flags"].view.url == second.url
    assert set(nodes) == {"from-env", "from-flags"}
    records = router.gateway.fleet.membership.records
    assert records["from-env"].interval == 0.2 == records["from-flags"].interval


def test_sigterm_drains_the_node_and_in_flight_requests_complete(
    make_sim, make_router, spawn
) -> None:
    slow = make_sim(name="slow", models=[emulated("llama3.2:3b")], gen_tps=25, reply_tokens=50)
    spare = make_sim(name="spare", models=[emulated("llama3.2:3b")])
    ollama.Client(host=slow.url).generate(model="llama3.2:3b", prompt="")  # slow ranks first
    router = make_router(nodes=[spare], fleet={"degraded_after": 25, "offline_after": 50})
    agent = spawn(
        ["--router", router.url, "--ollama", slow.url, "--name", "slow", "--interval", "0.2"], {}
    )
    nodes = router.gateway.fleet.nodes
    wait_for(lambda: "slow" in nodes and nodes["slow"].view.loaded)
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "tell me"}]}
    with httpx.stream("POST", router.url + "/api/chat", json=body, timeout=30) as stream:
        assert stream.headers["x-herd-node"] == "slow"
        lines = stream.iter_lines()
        next(lines)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0
        assert nodes["slow"].view.draining
        assert nodes["slow"].view.in_flight == 1  # still streaming
        after = httpx.post(router.url + "/api/chat", json={**body, "stream": False}, timeout=30)
        assert after.headers["x-herd-node"] == "spare"
        rest = list(lines)
    assert '"done":true' in rest[-1]
    state = httpx.get(router.url + "/fleet/status").json()["nodes"]
    assert {n["name"]: n["state"] for n in state} == {"spare": "online", "slow": "draining"}
