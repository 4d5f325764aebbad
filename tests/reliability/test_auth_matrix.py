"""Every route the router serves (read from the running app, plugins' routes included)
against every credential: none, a wrong key, a client key, the admin key, the node token.
Public routes open to all; client routes to client keys and the admin key; admin routes to
the admin key only; the heartbeat to the node token only."""

from __future__ import annotations

import re

import httpx
import pytest

ADMIN_KEY, CLIENT_KEY, NODE_TOKEN = "adm-key-0002", "cli-key-0002", "node-tok-0002"
CREDENTIALS = {
    "none": "",
    "wrong": "not-a-key-0002",
    "client": CLIENT_KEY,
    "admin": ADMIN_KEY,
    "node": NODE_TOKEN,
}
OPENS = {
    "public": set(CREDENTIALS),
    "client": {"client", "admin"},
    "admin": {"admin"},
    "node": {"node"},
}
PUBLIC_PATHS = {"/", "/healthz", "/readyz"}


def _kind(path: str, handler) -> str:
    if path in PUBLIC_PATHS:
        return "public"
    if path == "/fleet/heartbeat":
        return "node"
    return handler.opt.get("herd_auth") or "client"


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


@pytest.fixture(scope="module")
def router():
    from herd.testing import SimConfig, SimNode
    from herd.testing.router_runner import RouterHandle

    sim = SimNode(SimConfig(name="a", port=0)).start()
    handle = RouterHandle(
        nodes=[{"name": "a", "url": sim.url}],
        auth={
            "admin_key": ADMIN_KEY,
            "node_token": NODE_TOKEN,
            "api_keys": [{"name": "app", "key": CLIENT_KEY}],
        },
        workloads={"transcription": True, "image_generation": True},
    ).start()
    yield handle
    handle.stop()
    sim.stop()


def _routes(router) -> list[tuple[str, str, str]]:
    found = []
    for route in router.app.routes:
        for handler in route.route_handlers:
            for method in sorted(getattr(handler, "http_methods", ())):
                if method in ("OPTIONS", "HEAD"):
                    continue
                found.append((method, route.path, _kind(route.path, handler)))
    return found


def test_the_matrix_covers_every_kind(router) -> None:
    kinds = {kind for _, _, kind in _routes(router)}
    assert kinds == {"public", "client", "admin", "node"}
    assert len(_routes(router)) > 40


def test_every_route_against_every_credential(router) -> None:
    wrong: list[str] = []
    client = httpx.Client(base_url=router.url, timeout=30)  # one client: no TLS setup per call
    for method, path, kind in _routes(router):
        for credential, secret in CREDENTIALS.items():
            headers = {"content-type": "application/json"}
            if secret:
                headers["authorization"] = f"Bearer {secret}"
            body = b"{}" if method in ("POST", "DELETE", "PUT") else None
            with client.stream(method, _concrete(path), content=body, headers=headers) as reply:
                status = reply.status_code
            refused = status in (401, 403)
            if refused == (credential in OPENS[kind]):
                wrong.append(f"{method} {path} ({kind}) with {credential}: {status}")
            assert status < 500, f"{method} {path} with {credential}: {status}"
    client.close()
    assert not wrong, "\n".join(wrong)
