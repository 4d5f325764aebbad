"""The inference routes served directly (``herd._engine.direct``) answer exactly as the same
routes served through Litestar: the same status, headers and bytes for every mistake a
client can make, the same stream for a good request, the same key rules. A plugin that adds
Litestar layers (middleware) turns the direct path off, and its middleware sees them."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from herd._engine.app import create_app
from herd._engine.config import load_settings
from herd._engine.direct import DirectRoutes
from herd._engine.plugins import make_plugin_manager
from herd.hookspecs import hookimpl
from herd.testing import SimConfig, SimNode
from herd.testing.router_runner import RouterHandle
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol
from litestar.testing import TestClient

from tests.conftest import emulated

LLAMA = "llama3.2:3b"
EMBED = "nomic-embed-text"
KEY = "sk-direct-test-key"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimNode]:
    models = [emulated(LLAMA), emulated(EMBED, 0.3, ("embedding",))]
    with SimNode(SimConfig(name="solo", port=0, models=models, reply_tokens=5)) as node:
        yield node


@pytest.fixture(scope="module")
def router(sim: SimNode) -> Iterator[RouterHandle]:
    limits = {"max_body_bytes": 20_000}
    with RouterHandle(nodes=[{"name": "solo", "url": sim.url}], limits=limits) as handle:
        yield handle


@pytest.fixture(scope="module")
def keyed(sim: SimNode) -> Iterator[RouterHandle]:
    keys = {"api_keys": [{"name": "ci", "key": KEY}]}
    with RouterHandle(nodes=[{"name": "solo", "url": sim.url}], auth=keys) as handle:
        yield handle


def _paths(handle: RouterHandle) -> dict[str, Any]:
    gate = handle.app.asgi_handler  # the CORS gate, then the direct routes, then Litestar
    assert isinstance(gate.app, DirectRoutes), "the default app serves inference directly"
    return {"direct": gate.app, "litestar": gate.app.app}


_VOLATILE = re.compile(
    rb'"(created_at|created|id|total_duration|load_duration|prompt_eval_duration|'
    rb'eval_duration|system_fingerprint)":\s*("[^"]*"|\d+)'
)


def _answer(reply: httpx.Response) -> tuple[Any, ...]:
    headers = {
        k: v
        for k, v in reply.headers.items()
        if k not in ("date", "x-herd-score", "server", "content-length")
    }
    return reply.status_code, headers, _VOLATILE.sub(b"", reply.content)


def _both(handle: RouterHandle, send: Any) -> dict[str, tuple[Any, ...]]:
    """The answer to ``send()`` through each path; the direct path is back in place after."""
    gate = handle.app.asgi_handler
    paths = _paths(handle)
    answers = {}
    try:
        for name, app in paths.items():
            gate.app = app
            answers[name] = _answer(send())
    finally:
        gate.app = paths["direct"]
    return answers


CHAT = {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]}
REQUESTS: list[tuple[str, str, Any, int]] = [
    ("stream", "/api/chat", CHAT, 200),
    ("whole", "/api/chat", {**CHAT, "stream": False}, 200),
    ("generate", "/api/generate", {"model": LLAMA, "prompt": "hi", "stream": False}, 200),
    ("embed", "/api/embed", {"model": EMBED, "input": ["a", "b"]}, 200),
    ("openai stream", "/v1/chat/completions", {**CHAT, "stream": True}, 200),
    ("openai whole", "/v1/chat/completions", CHAT, 200),
    ("openai embeddings", "/v1/embeddings", {"model": EMBED, "input": "a"}, 200),
    ("anthropic", "/v1/messages", {**CHAT, "max_tokens": 16}, 200),
    ("not JSON", "/api/chat", b"{not json", 400),
    ("no model", "/api/chat", {"messages": []}, 400),
    ("empty model generate", "/api/generate", {"model": ""}, 404),
    ("unknown model", "/api/chat", {**CHAT, "model": "nope:1b"}, 404),
    ("too deep", "/api/chat", b"[" * 300 + b"]" * 300, 400),
    ("too large", "/api/chat", {**CHAT, "pad": "x" * 30_000}, 413),
    ("openai no messages", "/v1/chat/completions", {"model": LLAMA}, 400),
    ("anthropic no max_tokens", "/v1/messages", CHAT, 400),
]


@pytest.mark.parametrize(("case", "path", "body", "status"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_each_request_gets_the_same_answer_on_both_paths(
    router: RouterHandle, case: str, path: str, body: Any, status: int
) -> None:
    content = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) else body

    def send() -> httpx.Response:
        return httpx.post(
            f"{router.url}{path}",
            json=payload,
            content=content,
            headers={"content-type": "application/json"},
            timeout=30,
        )

    answers = _both(router, send)
    assert answers["direct"] == answers["litestar"]
    assert answers["direct"][0] == status, answers["direct"]


def test_other_methods_on_a_direct_path_get_litestars_405(router: RouterHandle) -> None:
    reply = httpx.get(f"{router.url}/api/chat", timeout=30)
    assert reply.status_code == 405
    reply = httpx.get(f"{router.url}/v1/chat/completions", timeout=30)
    assert reply.status_code == 405 and "error" in reply.json()


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}],
    ids=["no key", "wrong key", "bearer key", "x-api-key"],
)
def test_keys_are_checked_the_same_on_both_paths(keyed: RouterHandle, headers: dict) -> None:
    def send() -> httpx.Response:
        return httpx.post(
            f"{keyed.url}/api/chat", json={**CHAT, "stream": False}, headers=headers, timeout=30
        )

    answers = _both(keyed, send)
    assert answers["direct"] == answers["litestar"]
    assert answers["direct"][0] == (200 if KEY in str(headers) else 401)


class _Seen:
    paths: list[str] = []


class _Recording:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            _Seen.paths.append(scope["path"])
        await self.app(scope, receive, send)


class _MiddlewarePlugin(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.append(_Recording)
        return app_config


class _AddsMiddleware:
    @hookimpl
    def herd_register_litestar_plugins(self, settings: Any) -> list[Any]:
        return [_MiddlewarePlugin()]


def test_a_plugin_adding_middleware_turns_the_direct_path_off(sim: SimNode) -> None:
    settings = load_settings(
        None,
        env={},
        overrides={
            "data_dir": "",
            "fleet": {"discover_local": False},
            "nodes": [{"name": "solo", "url": sim.url}],
        },
    )
    pm = make_plugin_manager(settings)
    pm.register(_AddsMiddleware(), name="test-adds-middleware")
    app = create_app(settings, pm=pm)
    assert not isinstance(app.asgi_handler.app, DirectRoutes)
    _Seen.paths.clear()
    with TestClient(app) as client:
        reply = client.post("/api/chat", json={**CHAT, "stream": False})
    assert reply.status_code == 200, reply.text
    assert "/api/chat" in _Seen.paths


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], {}),
        ([(b"x-herd-tags", b"a"), (b"x-herd-tags", b"b")], {"x-herd-tags": "a"}),
        ([(b"host", b"x"), (b"x-name", b"caf\xe9")], {"host": "x", "x-name": "caf\u00e9"}),
        ([(b"x-odd", b"a\nb"), (b"host", b"x")], {"x-odd": "a\nb", "host": "x"}),
    ],
    ids=["none", "repeated", "latin-1", "newline"],
)
def test_a_direct_requests_headers_read_as_litestars(raw: list, expected: dict) -> None:
    from herd._engine.direct import DirectRequest

    headers = DirectRequest(None, {"headers": raw}).headers
    assert dict(headers) == expected
    for name, value in expected.items():
        assert headers.get(name.upper()) == value


class _CountingGate:
    """The CORS gate as the direct lane sees it, counting the lane's requests."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.lane_requests = 0

    @property
    def app(self) -> Any:
        self.lane_requests += 1
        return self.gate.app


@pytest.fixture
def lane(router: RouterHandle) -> Iterator[tuple[_CountingGate, list]]:
    """The router's direct lane, counted, and the traces of what it serves meanwhile."""
    lane = router.app.state.direct_lane
    gate, counting = lane.gate, _CountingGate(lane.gate)
    gateway = router.gateway
    traces: list = []
    finish = gateway.finish
    lane.gate = counting
    gateway.finish = lambda trace: (traces.append(trace), finish(trace))
    try:
        yield counting, traces
    finally:
        lane.gate = gate
        del gateway.finish


@pytest.mark.parametrize(
    ("path", "headers", "lane_taken", "client"),
    [
        ("/api/chat", {}, True, "127.0.0.1"),
        ("/api/chat?debug=1", {}, False, "127.0.0.1"),
        ("/api/chat", {"X-Forwarded-For": "10.9.8.7"}, False, "10.9.8.7"),
        ("/api/chat", {"Origin": "http://localhost:3000"}, False, "127.0.0.1"),
    ],
    ids=["plain", "query", "forwarded", "cross-origin"],
)
def test_the_direct_lane_serves_only_what_the_layers_in_front_would_pass_unchanged(
    router: RouterHandle,
    lane: tuple[_CountingGate, list],
    path: str,
    headers: dict,
    lane_taken: bool,
    client: str,
) -> None:
    counting, traces = lane
    reply = httpx.post(f"{router.url}{path}", json=CHAT, headers=headers, timeout=30)
    assert reply.status_code == 200 and '"done":true' in reply.text
    deadline = time.monotonic() + 10  # (the trace is written just after the reply's end)
    while not traces and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counting.lane_requests == (1 if lane_taken else 0)
    assert [trace.client.rpartition(":")[0] for trace in traces] == [client]
    if "Origin" in headers:  # the CORS gate answered it
        assert reply.headers["access-control-allow-origin"] == headers["Origin"]


def test_with_a_uvicorn_whose_cycle_herd_cannot_start_every_request_goes_the_whole_way(
    router: RouterHandle, lane: tuple[_CountingGate, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    # (another uvicorn's request cycle: herd's server leaves the lane closed)
    from herd._engine import server

    monkeypatch.setattr(server, "_STARTS_LANE", False)
    counting, _ = lane
    reply = httpx.post(f"{router.url}/api/chat", json=CHAT, timeout=30)
    assert reply.status_code == 200 and '"done":true' in reply.text
    assert counting.lane_requests == 0
