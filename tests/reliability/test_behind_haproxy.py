"""Several routers behind a real HAProxy, configured as ``docs/deploy.md`` shows.

The page's ``haproxy.cfg`` is run as written there (its addresses aside): a stream must
reach the client token by token, not in the bursts HAProxy makes of small writes unless
told ``option http-no-delay``; and with one replica stopped, every request must still be
answered, none left to three seconds of retries and a 503.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import ollama
import pytest

pytestmark = pytest.mark.proxy

LLAMA = "llama3.2:3b"
MESSAGES = [{"role": "user", "content": "hi"}]
DEPLOY_DOC = Path(__file__).parents[2] / "docs" / "deploy.md"


@pytest.fixture
def replicas(make_sim, make_router):
    # 12 tokens at 10 a second: a line every 100 ms at the node
    node = make_sim(name="a", gen_tps=10.0, reply_tokens=12)
    return make_router(nodes=[node]), make_router(nodes=[node])


def _documented_config(first: int, second: int) -> Callable[[int], str]:
    """deploy.md's haproxy.cfg with its two replicas at ``first`` and ``second``, bound to
    the test's free loopback port."""
    section = DEPLOY_DOC.read_text().split("`haproxy.cfg`:", 1)[1]
    config = re.search(r"```\n(.*?)```", section, re.S).group(1)
    for written in ("bind :11435", "herd1:11435", "herd2:11435"):
        assert written in config, written
    config = config.replace("herd1:11435", f"127.0.0.1:{first}")
    config = config.replace("herd2:11435", f"127.0.0.1:{second}")

    def at(port: int) -> str:
        return config.replace("bind :11435", f"bind 127.0.0.1:{port}")

    return at


def test_a_stream_passes_haproxy_token_by_token(haproxy, replicas) -> None:
    proxy = haproxy(_documented_config(replicas[0].port, replicas[1].port))
    client = ollama.Client(host=proxy.url)
    arrivals, done = [], False
    for part in client.chat(model=LLAMA, messages=MESSAGES, stream=True):
        arrivals.append(time.monotonic())
        done = part.done
    assert done and len(arrivals) == 13  # 12 tokens and the last line
    # lines 100 ms apart at the node; merged, most would come within a few ms of another
    # (at most the last line, sent with the last token, and a rare stall of this client)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert sum(1 for gap in gaps if gap < 0.03) <= 3, [round(gap, 3) for gap in gaps]


def test_a_stopped_replica_costs_no_request(haproxy, replicas) -> None:
    first, second = replicas
    proxy = haproxy(_documented_config(first.port, second.port))
    body = {"model": LLAMA, "messages": MESSAGES, "stream": False, "options": {"num_predict": 1}}
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        served = {client.post("/api/chat", json=body).headers["x-herd-node"] for _ in range(4)}
        assert served == {"a"}
        first.stop()  # before HAProxy's health check has noticed
        statuses, slowest = [], 0.0
        for _ in range(10):
            started = time.monotonic()
            statuses.append(client.post("/api/chat", json=body).status_code)
            slowest = max(slowest, time.monotonic() - started)
    assert statuses == [200] * 10
    assert slowest < 2.0  # (not a second of retries on the stopped replica, let alone three)
