"""Browsers on other sites (CORS): allowed origins get preflights and headers on every
answer, other origins get 403 in the client's protocol before a node sees anything, and
requests without an ``Origin`` (SDKs, curl) or from herd's own pages are untouched."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from herd._engine.config import ConfigError, load_settings
from herd._engine.cors import origin_matcher
from herd.testing import SimConfig, SimNode
from herd.testing.router_runner import RouterHandle

from tests.conftest import emulated

LLAMA = "llama3.2:3b"
PAGE = "http://localhost:5173"  # a dev server on this machine: allowed by default
CHAT = {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimNode]:
    with SimNode(SimConfig(name="solo", port=0, models=[emulated(LLAMA)], reply_tokens=4)) as n:
        yield n


@pytest.fixture(scope="module")
def router(sim: SimNode) -> Iterator[RouterHandle]:
    with RouterHandle(nodes=[{"name": "solo", "url": sim.url}]) as handle:
        yield handle


def _node_requests(sim: SimNode) -> int:
    stats = httpx.get(f"{sim.url}/_sim/stats", timeout=10).json()
    return sum(stats["requests"].values())


def _cors(reply: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in reply.headers.items() if k.startswith("access-control-")}


def test_clients_without_an_origin_and_herds_own_pages_get_no_cors_headers(
    router: RouterHandle,
) -> None:
    plain = httpx.post(f"{router.url}/api/chat", json=CHAT, timeout=30)
    assert plain.status_code == 200 and _cors(plain) == {}
    own = httpx.post(f"{router.url}/api/chat", json=CHAT, headers={"Origin": router.url})
    assert own.status_code == 200 and _cors(own) == {}


def test_an_allowed_page_gets_its_preflight_and_reads_a_stream_and_herds_headers(
    router: RouterHandle,
) -> None:
    asked = "content-type, authorization, x-stainless-os"
    preflight = httpx.options(
        f"{router.url}/v1/chat/completions",
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == PAGE
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == asked
    assert "origin" in preflight.headers["vary"].lower()

    with httpx.stream(
        "POST", f"{router.url}/api/chat", json=CHAT, headers={"Origin": PAGE}, timeout=30
    ) as reply:
        lines = [line for line in reply.iter_lines() if line]
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == PAGE
    assert "X-Herd-Node" in reply.headers["access-control-expose-headers"]
    assert reply.headers["x-herd-node"] == "solo"
    assert '"done":true' in lines[-1].replace(" ", "")


def test_an_error_answer_to_an_allowed_page_is_readable_by_it(router: RouterHandle) -> None:
    missing = httpx.post(
        f"{router.url}/v1/chat/completions",
        json={**CHAT, "model": "nope:1b"},
        headers={"Origin": PAGE},
    )
    assert missing.status_code == 404
    assert missing.headers["access-control-allow-origin"] == PAGE
    assert missing.json()["error"]["message"]
    # admin routes stay same-site only: refused, but the page can read why
    pull = httpx.post(f"{router.url}/api/pull", json={"model": LLAMA}, headers={"Origin": PAGE})
    assert pull.status_code == 403
    assert pull.headers["access-control-allow-origin"] == PAGE
    assert "cross-site" in pull.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "message_of"),
    [
        ("/api/chat", CHAT, lambda j: j["error"]),
        ("/v1/chat/completions", CHAT, lambda j: j["error"]["message"]),
        (
            "/v1/messages",
            {**CHAT, "max_tokens": 8},
            lambda j: j["error"]["message"] if j["type"] == "error" else None,
        ),
    ],
)
def test_a_page_on_another_site_is_refused_in_the_clients_protocol_before_any_node(
    router: RouterHandle,
    sim: SimNode,
    path: str,
    body: dict[str, Any],
    message_of: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="herd.audit")
    before = _node_requests(sim)
    # text/plain: the "simple" request a browser sends without asking first
    reply = httpx.post(
        f"{router.url}{path}",
        content=httpx.Request("POST", "/", json=body).content,
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
    )
    assert reply.status_code == 403
    assert "auth.allowed_origins" in message_of(reply.json())
    assert _cors(reply) == {}
    preflight = httpx.options(
        f"{router.url}{path}",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 403 and _cors(preflight) == {}
    assert _node_requests(sim) == before
    # the page cannot read why: herd's log says it, once a minute per origin and path
    refused = [r.getMessage() for r in caplog.records if "refused origin" in r.getMessage()]
    assert any("https://evil.example" in line and path in line for line in refused), refused


def test_a_configured_list_replaces_the_default(sim: SimNode) -> None:
    auth = {"allowed_origins": ["https://chat.example.com", "https://*.corp.example"]}
    with RouterHandle(nodes=[{"name": "solo", "url": sim.url}], auth=auth) as handle:
        for origin, status in [
            ("https://chat.example.com", 200),
            ("https://team.corp.example", 200),
            ("https://corp.example.evil.com", 403),
            (PAGE, 403),  # not in the list any more
        ]:
            reply = httpx.post(f"{handle.url}/api/chat", json=CHAT, headers={"Origin": origin})
            assert reply.status_code == status, origin


def test_with_api_keys_a_preflight_needs_none_and_the_request_still_does(sim: SimNode) -> None:
    auth = {"api_keys": [{"name": "web", "key": "web-secret-0001"}]}
    with RouterHandle(nodes=[{"name": "solo", "url": sim.url}], auth=auth) as handle:
        url = f"{handle.url}/v1/chat/completions"
        asked = {"Origin": PAGE, "Access-Control-Request-Method": "POST"}
        assert httpx.options(url, headers=asked).status_code == 204  # browsers send no key here
        keyless = httpx.post(url, json=CHAT, headers={"Origin": PAGE})
        assert keyless.status_code == 401
        assert keyless.headers["access-control-allow-origin"] == PAGE
        keyed = httpx.post(
            url, json=CHAT, headers={"Origin": PAGE, "Authorization": "Bearer web-secret-0001"}
        )
        assert keyed.status_code == 200
        assert keyed.headers["access-control-allow-origin"] == PAGE


def test_origin_patterns() -> None:
    default = origin_matcher(load_settings(None, env={}).auth.allowed_origins)
    for origin in ["http://localhost:3000", "http://127.0.0.1", "app://obsidian.md", "tauri://x"]:
        assert default(origin), origin
    for origin in ["http://localhost.evil.com", "https://evil.example", "http://10.0.0.5:3000"]:
        assert not default(origin), origin
    everyone = origin_matcher(["*"])
    assert everyone("https://anything.example")
    assert not origin_matcher([])("http://localhost")


def test_a_malformed_origin_is_a_config_error_naming_the_key() -> None:
    env = {"HERD_AUTH__ALLOWED_ORIGINS": '["http://chat.example.com/app"]'}
    with pytest.raises(ConfigError) as info:
        load_settings(None, env=env)
    assert "allowed_origins" in str(info.value)
    good = {"HERD_AUTH__ALLOWED_ORIGINS": '["http://192.168.1.5:3000", "null"]'}
    allowed = load_settings(None, env=good).auth.allowed_origins
    assert allowed == ["http://192.168.1.5:3000", "null"]
    assert origin_matcher(allowed)("null")
    assert not origin_matcher(load_settings(None, env={}).auth.allowed_origins)("null")
