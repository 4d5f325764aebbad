"""herd behind a real nginx, configured as a newcomer would: ``proxy_pass`` and nothing else.

nginx then speaks HTTP/1.0 to herd and buffers replies, unless told otherwise. A stream
must still reach the client token by token, whole and readable, for the real ``ollama``
and ``openai`` clients; and with the upstream keep-alive setup the docs recommend
(``proxy_http_version 1.1``), too. The configuration ``docs/deploy.md`` shows is run as
it is written there (its port and TLS aside), so the page cannot drift from what works.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import ollama
import openai
import pytest

pytestmark = pytest.mark.proxy

LLAMA = "llama3.2:3b"
MESSAGES = [{"role": "user", "content": "hi"}]
DEPLOY_DOC = Path(__file__).parents[2] / "docs" / "deploy.md"
KEEP_ALIVE = """      proxy_http_version 1.1;
      proxy_set_header Connection "";
"""


@pytest.fixture
def router(make_sim, make_router):
    # 12 tokens at 10 a second: a stream spans about 1.1 s at the node (a buffered one
    # arrives at once: the 0.25 s the tests ask leaves room for a busy machine)
    return make_router(nodes=[make_sim(name="a", gen_tps=10.0, reply_tokens=12)])


def _spread(arrivals: list[float]) -> float:
    return arrivals[-1] - arrivals[0]


@pytest.mark.parametrize("extra", ["", KEEP_ALIVE], ids=["nginx defaults", "keep-alive"])
def test_an_ollama_stream_passes_nginx_token_by_token(nginx, router, extra: str) -> None:
    proxy = nginx(router.url, extra)
    client = ollama.Client(host=proxy.url)
    for _ in range(2):  # (a second request: a kept-alive upstream connection is reused)
        arrivals, text = [], ""
        for part in client.chat(model=LLAMA, messages=MESSAGES, stream=True):
            arrivals.append(time.monotonic())
            text += part.message.content or ""
        assert part.done and part.eval_count == 12
        assert len(text.split()) >= 6
        # buffered, every line would come at once at the end
        assert _spread(arrivals) > 0.25, arrivals


def test_an_openai_stream_passes_nginx_token_by_token(nginx, router) -> None:
    proxy = nginx(router.url)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0)
    arrivals, text, finish = [], "", None
    for chunk in client.chat.completions.create(model=LLAMA, messages=MESSAGES, stream=True):
        arrivals.append(time.monotonic())
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "stop" and text.strip()
    assert _spread(arrivals) > 0.25, arrivals


def test_whole_answers_and_herds_headers_pass_nginx(nginx, router) -> None:
    proxy = nginx(router.url)
    reply = httpx.post(
        proxy.url + "/api/chat",
        json={"model": LLAMA, "messages": MESSAGES, "stream": False},
        timeout=30,
    )
    assert reply.status_code == 200
    assert reply.json()["done"] is True
    assert reply.headers["x-herd-node"] == "a"
    assert httpx.get(proxy.url + "/api/tags", timeout=30).json()["models"]
    # a client's mistake keeps its status and its message through the proxy
    unknown = httpx.post(
        proxy.url + "/api/chat", json={"model": "nope:1b", "messages": MESSAGES}, timeout=30
    )
    assert unknown.status_code == 404
    assert "nope:1b" in unknown.json()["error"]


def _documented_config(router_port: int) -> Callable[[int], str]:
    """deploy.md's nginx configuration as a reader would use it here: its upstream is the
    test's router, and it listens on the test's free loopback port without TLS (the
    certificate lines are comments there)."""
    section = DEPLOY_DOC.read_text().split("## Behind nginx", 1)[1]
    snippet = re.search(r"```nginx\n(.*?)```", section, re.S).group(1)
    assert "server 127.0.0.1:11435;" in snippet and "listen 443 ssl;" in snippet
    snippet = snippet.replace("server 127.0.0.1:11435;", f"server 127.0.0.1:{router_port};")

    def servers(port: int) -> str:
        return snippet.replace("listen 443 ssl;", f"listen 127.0.0.1:{port};")

    return servers


def test_the_documented_nginx_configuration_works(nginx, router) -> None:
    proxy = nginx(servers=_documented_config(router.port))
    client = ollama.Client(host=proxy.url)
    arrivals, done = [], False
    for part in client.chat(model=LLAMA, messages=MESSAGES, stream=True):
        arrivals.append(time.monotonic())
        done = part.done
    assert done and _spread(arrivals) > 0.25, arrivals
    # its client_max_body_size lets a 2 MB prompt through (nginx's default, 1 MB, says 413),
    # and a client's X-Forwarded-For, with nginx's address added, names the client in the
    # trace (herd trusts the proxy on this machine)
    long = [{"role": "user", "content": "x " * 1_000_000}]
    reply = httpx.post(
        proxy.url + "/api/chat",
        json={"model": LLAMA, "messages": long, "stream": False},
        headers={"X-Forwarded-For": "10.1.2.3", "X-Herd-Tags": "big"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text[:200]
    assert _client_of_last_trace(router.url) == "10.1.2.3:0"


def _client_of_last_trace(router_url: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # (traces are written in batches)
        rows = httpx.get(router_url + "/dashboard/api/traces?limit=1", timeout=30).json()
        rows = rows["traces"] if isinstance(rows, dict) else rows
        if rows and rows[0]["tags"] == ["big"]:
            url = router_url + "/dashboard/api/traces/" + rows[0]["request_id"]
            return httpx.get(url, timeout=30).json()["client"]
        time.sleep(0.1)
    raise AssertionError("the request's trace never came")
