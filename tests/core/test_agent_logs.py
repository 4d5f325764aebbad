"""`herd-node` logs what an operator needs (it was accepted) and not a line per poll."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.core.processes import clean_env

HERD_NODE = Path(sys.executable).with_name("herd-node")


def test_agent_is_quiet_at_info(make_sim, make_router, tmp_path: Path) -> None:
    sim = make_sim(name="studio")
    router = make_router(auth={"node_token": "tok"})
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:
        agent = subprocess.Popen(
            [str(HERD_NODE), "--interval", "0.2"],
            env=clean_env(
                HERD_NODE_ROUTER=router.url,
                HERD_NODE_OLLAMA=sim.url,
                HERD_NODE_TOKEN="tok",
                HERD_NODE_NAME="studio",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            beats = 0
            while beats < 10 and time.monotonic() < deadline:
                nodes = httpx.get(router.url + "/fleet/status").json()["nodes"]
                beats = max((n.get("heartbeat", {}).get("beats", 0) for n in nodes), default=0)
                time.sleep(0.1)
            assert beats >= 10
        finally:
            agent.terminate()
            agent.wait(30)
    text = log_path.read_text()
    assert f"router {router.url} accepted node 'studio'" in text
    assert "herd-node stopped; the router knows node 'studio' is draining" in text
    assert "HTTP Request" not in text and "httpx" not in text
    assert len(text.splitlines()) < 10, text  # ten heartbeats, a handful of lines


def test_agent_says_when_the_router_did_not_drain_its_node(
    make_sim, make_router, tmp_path: Path
) -> None:
    """Without the node token, an agent's drain does not overrule a YAML node: say so."""
    sim = make_sim(name="studio")
    router = make_router(nodes=[sim])
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:
        agent = subprocess.Popen(
            [str(HERD_NODE), "--interval", "0.2"],
            env=clean_env(HERD_NODE_ROUTER=router.url, HERD_NODE_OLLAMA=sim.url),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while "accepted node" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            agent.terminate()
            agent.wait(30)
    text = log_path.read_text()
    assert "accepted node 'studio'" in text  # matched to the YAML node by its URL
    assert "the router still sends node 'studio' requests" in text, text
    assert "is draining" not in text
    nodes = {n["name"]: n for n in httpx.get(router.url + "/fleet/status").json()["nodes"]}
    assert nodes["studio"]["state"] == "online"
