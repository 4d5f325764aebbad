"""CORS in a real browser: a page served from another origin on this machine calls herd
with ``fetch``. Chromium decides, from herd's answers alone, whether the page may read
them; an allowed page streams a chat and reads ``X-Herd-Node``, a refused one gets
nothing and the node is never asked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from dashboard_browser import browser
from herd.testing import SimConfig, SimNode
from herd.testing.router_runner import RouterHandle

from tests.conftest import emulated

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the shared Chromium fixture

LLAMA = "llama3.2:3b"

# Runs in the page: a streamed /api/chat read line by line, as a web chat UI does.
CHAT_FROM_PAGE = """async (url) => {
  try {
    const reply = await fetch(url + "/api/chat", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({model: "MODEL", messages: [{role: "user", content: "hi"}]}),
    });
    const text = await reply.text();
    const lines = text.split("\\n").filter(Boolean).map(JSON.parse);
    return {status: reply.status, node: reply.headers.get("X-Herd-Node"),
            done: lines[lines.length - 1].done, lines: lines.length};
  } catch (error) {
    return {blocked: String(error)};
  }
}""".replace("MODEL", LLAMA)


class _BlankPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>a chat app</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_port() -> Iterator[int]:
    """A web app's own server on this machine (another origin than herd's)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BlankPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimNode]:
    with SimNode(SimConfig(name="solo", port=0, models=[emulated(LLAMA)], reply_tokens=4)) as n:
        yield n


def _node_requests(sim: SimNode) -> int:
    return sum(httpx.get(f"{sim.url}/_sim/stats", timeout=10).json()["requests"].values())


def _chat_from(browser: Any, page_url: str, router_url: str) -> dict[str, Any]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(page_url)
        return page.evaluate(CHAT_FROM_PAGE, router_url)
    finally:
        context.close()


def test_a_page_on_this_machine_streams_a_chat_and_reads_herds_headers(
    browser: Any, sim: SimNode, page_port: int
) -> None:
    with RouterHandle(nodes=[{"name": "solo", "url": sim.url}]) as router:
        result = _chat_from(browser, f"http://127.0.0.1:{page_port}/", router.url)
    assert result == {"status": 200, "node": "solo", "done": True, "lines": result["lines"]}
    assert result["lines"] > 1


def test_a_page_on_an_origin_not_allowed_reads_nothing_and_the_node_is_never_asked(
    browser: Any, sim: SimNode, page_port: int
) -> None:
    only = {"allowed_origins": [f"http://127.0.0.1:{page_port}"]}
    with RouterHandle(nodes=[{"name": "solo", "url": sim.url}], auth=only) as router:
        before = _node_requests(sim)
        # the same server, reached as localhost: another origin, not in the list
        refused = _chat_from(browser, f"http://localhost:{page_port}/", router.url)
        assert "blocked" in refused, refused
        assert _node_requests(sim) == before
        allowed = _chat_from(browser, f"http://127.0.0.1:{page_port}/", router.url)
        assert allowed["status"] == 200 and allowed["done"] is True
