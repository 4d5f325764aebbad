"""mDNS discovery, without sending a packet: records, addresses, hooks and the agent's lookup."""

from __future__ import annotations

import asyncio
import ipaddress
from types import SimpleNamespace

import pytest

mdns = pytest.importorskip("herd_contrib.mdns")

from herd._engine.config import load_settings  # noqa: E402
from herd._engine.plugins import make_plugin_manager  # noqa: E402
from herd_node import node as agent_node  # noqa: E402


def test_advertisement_round_trips_to_a_router_url() -> None:
    info = mdns.service_info("herd on test", 11435, ["10.0.0.2"], "0.1.0")
    assert info.type == mdns.SERVICE_TYPE
    assert info.name == "herd on test._herd._tcp.local."
    assert mdns.router_url(info) == "http://10.0.0.2:11435"


def test_advertisement_without_a_usable_scheme_is_ignored() -> None:
    info = mdns.service_info("x", 11435, ["10.0.0.2"], "0.1.0")
    info.properties[b"scheme"] = b"file"
    info._set_properties(info.properties)
    assert mdns.router_url(info) == ""


def test_addresses_follow_the_router_host() -> None:
    assert mdns.advertised_addresses("10.0.0.2", []) == ["10.0.0.2"]
    assert mdns.advertised_addresses("0.0.0.0", ["192.168.1.9"]) == ["192.168.1.9"]
    everywhere = mdns.advertised_addresses("0.0.0.0", [])
    assert not any(ipaddress.ip_address(a).is_loopback for a in everywhere)


def test_plugin_loads_from_yaml() -> None:
    settings = load_settings(None, env={}, overrides={"plugins": {"load": ["herd_contrib.mdns"]}})
    names = {name for name, _ in make_plugin_manager(settings, env={}).list_name_plugin()}
    assert "herd_contrib.mdns" in names


def test_loopback_router_is_not_advertised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mdns, "AsyncZeroconf", lambda: pytest.fail("no advertisement expected"))
    router = SimpleNamespace(settings=load_settings(None, env={}))
    asyncio.run(mdns.herd_startup(router))
    asyncio.run(mdns.herd_shutdown(router))


def test_router_on_the_network_is_advertised_and_withdrawn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class FakeZeroconf:
        async def async_register_service(self, info, allow_name_change=False):
            calls.append(f"register {mdns.router_url(info)}")

        async def async_unregister_service(self, info):
            calls.append("unregister")

        async def async_close(self):
            calls.append("close")

    monkeypatch.setattr(mdns, "AsyncZeroconf", FakeZeroconf)
    settings = load_settings(None, env={}, overrides={"host": "10.0.0.2", "port": 8000})
    router = SimpleNamespace(settings=settings)

    async def lifecycle() -> None:
        await mdns.herd_startup(router)
        await mdns.herd_shutdown(router)

    asyncio.run(lifecycle())
    assert calls == ["register http://10.0.0.2:8000", "unregister", "close"]


def test_agent_without_router_asks_mdns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mdns, "find_router", lambda timeout: "http://10.0.0.2:11435")
    assert asyncio.run(agent_node._discover_router(1.0)) == "http://10.0.0.2:11435"
    monkeypatch.setattr(mdns, "find_router", lambda timeout: "")
    assert asyncio.run(agent_node._discover_router(1.0)) == ""
