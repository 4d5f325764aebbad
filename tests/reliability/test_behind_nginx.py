"""herd behind a real nginx, configured as a newcomer would: ``proxy_pass`` and nothing else.

nginx then speaks HTTP/1.0 to herd and buffers replies, unless told otherwise. A stream
must still reach the client token by token, whole and readable, for the real ``ollama``
and ``openai`` clients; and with the upstream keep-alive setup the docs recommend
(``proxy_http_version 1.1``), too.
"""

from __future__ import annotations

import time

import httpx
import ollama
import openai
import pytest

from tests.reliability.nginx_server import nginx

__all__ = ["nginx"]

pytestmark = pytest.mark.nginx

LLAMA = "llama3.2:3b"
MESSAGES = [{"role": "user", "content": "hi"}]
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
