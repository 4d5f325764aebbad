"""Secure by default: what a web page in the operator's browser, a stray heartbeat and a
client key can and cannot do to the fleet (docs/security.md)."""

from __future__ import annotations

import httpx
import pytest
from herd.protocol.heartbeat import Heartbeat, encode
from litestar.testing import TestClient

EVIL = {"origin": "http://evil.example"}
TEXT = {"content-type": "text/plain"}
ADMIN_KEY, CLIENT_KEY = "adm-key-0001", "cli-key-0001"


@pytest.fixture
def open_router(make_sim, make_router):
    """The default setup: no keys, no node token, listening on 127.0.0.1."""
    a, b = make_sim(name="a"), make_sim(name="b")
    return make_router(nodes=[a, b])


@pytest.mark.parametrize(
    "path,body",
    [
        ("/dashboard/api/settings", b'{"signals": {"availability": {"weight": 0}}}'),
        ("/fleet/nodes/a/drain", b""),
        ("/api/pull", b'{"model": "smollm:135m", "node": "a"}'),
        ("/dashboard/api/nodes/a/pull", b'{"model": "smollm:135m"}'),
        ("/dashboard/api/benchmarks", b'{"model": "llama3.2:3b", "duration_s": 1}'),
    ],
)
def test_simple_cross_site_posts_change_nothing(open_router, path: str, body: bytes) -> None:
    before = httpx.get(open_router.url + "/dashboard/api/settings").json()
    for headers in (TEXT, {**TEXT, **EVIL}, {"content-type": "application/json", **EVIL}):
        reply = httpx.post(open_router.url + path, content=body, headers=headers)
        assert reply.status_code in (403, 415), (headers, reply.text)
    assert httpx.get(open_router.url + "/dashboard/api/settings").json() == before
    views = {v.name: v for v in open_router.gateway.nodes()}
    assert not views["a"].draining
    assert not httpx.get(open_router.url + "/dashboard/api/benchmarks").json()["current"]


def test_the_dashboard_itself_may_post(open_router) -> None:
    same = {"origin": open_router.url, "content-type": "application/json"}
    reply = httpx.post(open_router.url + "/fleet/nodes/a/drain", headers=same)
    assert reply.status_code == 200 and reply.json()["draining"] is True
    httpx.post(open_router.url + "/fleet/nodes/a/undrain")


def test_a_text_plain_heartbeat_registers_no_rogue_node(open_router) -> None:
    beat = encode(Heartbeat(name="rogue", ollama_url="http://127.0.0.1:9"))
    for headers in (TEXT, {**EVIL, "content-type": "application/json"}):
        reply = httpx.post(open_router.url + "/fleet/heartbeat", content=beat, headers=headers)
        assert reply.status_code in (403, 415)
    assert "rogue" not in {v.name for v in open_router.gateway.nodes()}


def test_without_a_node_token_a_heartbeat_never_takes_a_yaml_node_offline(open_router) -> None:
    for name in ("a", "b"):
        beat = encode(
            Heartbeat(
                name=name,
                ollama_url=open_router.gateway.node(name).url,
                ollama_error="connection refused",
            )
        )
        reply = httpx.post(
            open_router.url + "/fleet/heartbeat",
            content=beat,
            headers={"content-type": "application/json"},
        )
        assert reply.status_code == 200
    assert {v.name: v.status for v in open_router.gateway.nodes()} == {
        "a": "online",
        "b": "online",
    }
    chat = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(open_router.url + "/api/chat", json=chat).status_code == 200


def test_without_a_node_token_only_local_agents_may_heartbeat(open_router) -> None:
    # Litestar's test client connects from "testclient", not a loopback address; used
    # without `with`, it does not run the app's startup a second time
    beat = encode(Heartbeat(name="remote", ollama_url="http://127.0.0.1:9"))
    client = TestClient(open_router.app)
    reply = client.post(
        "/fleet/heartbeat", content=beat, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 403 and "node_token" in reply.text
    drain = client.post("/fleet/nodes/a/drain")
    assert drain.status_code == 403 and "admin_key" in drain.text
    assert "remote" not in {v.name for v in open_router.gateway.nodes()}


@pytest.fixture
def keyed_router(make_sim, make_router):
    sim = make_sim(name="a")
    return make_router(
        nodes=[sim],
        auth={"admin_key": ADMIN_KEY, "api_keys": [{"name": "app", "key": CLIENT_KEY}]},
    )


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("DELETE", "/api/delete", {"model": "llama3.2:3b", "node": "a"}),
        ("POST", "/api/copy", {"source": "llama3.2:3b", "destination": "x:1", "node": "a"}),
        ("POST", "/api/pull", {"model": "smollm:135m", "node": "a"}),
    ],
)
def test_client_keys_never_reach_destructive_model_operations(
    keyed_router, method: str, path: str, body: dict
) -> None:
    for key in ("", "wrong", CLIENT_KEY):
        headers = {"authorization": f"Bearer {key}"} if key else {}
        reply = httpx.request(method, keyed_router.url + path, json=body, headers=headers)
        assert reply.status_code == 401, (key, reply.text)
    models = {m for v in keyed_router.gateway.nodes() for m in v.models}
    assert "llama3.2:3b" in models and "x:1" not in models
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    reply = httpx.request(method, keyed_router.url + path, json=body, headers=admin, timeout=60)
    assert reply.status_code == 200, reply.text


def test_dashboard_responses_forbid_framing_and_sniffing(open_router) -> None:
    for path in ("/dashboard/", "/dashboard/static/js/main.js", "/dashboard/api/fleet"):
        reply = httpx.get(open_router.url + path, follow_redirects=True)
        assert reply.status_code == 200, path
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
        assert "script-src 'self'" in reply.headers["content-security-policy"]
        # as docs/dashboard.md says: no inline styles either (the page sets them via CSSOM)
        assert "style-src 'self';" in reply.headers["content-security-policy"]
        assert "unsafe-inline" not in reply.headers["content-security-policy"]
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["x-content-type-options"] == "nosniff"


def test_behind_a_proxy_the_forwarded_host_is_the_dashboards_origin(open_router) -> None:
    headers = {
        "origin": "https://herd.example",
        "x-forwarded-host": "herd.example",
        "content-type": "application/json",
    }
    reply = httpx.post(open_router.url + "/fleet/nodes/a/drain", headers=headers)
    assert reply.status_code == 200
    httpx.post(open_router.url + "/fleet/nodes/a/undrain")
