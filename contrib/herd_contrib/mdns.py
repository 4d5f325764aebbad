"""mDNS discovery: the router advertises ``_herd._tcp``; ``herd-node`` without ``--router``
finds it. Needs the extra ``pip install 'herd-gateway[mdns]'`` (zeroconf).

Off unless the router's YAML loads it::

    plugins:
      load: [herd_contrib.mdns]
      options:
        mdns: {name: "herd on studio"}   # optional

mDNS is unauthenticated: anyone on the LAN can advertise ``_herd._tcp``. An agent that
found its router this way sends its node token to whoever answered, so pin ``--router``
on networks you do not trust.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from typing import Any

import ifaddr
import msgspec
from herd import hookimpl
from zeroconf import ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncZeroconf

__all__ = [
    "SERVICE_TYPE",
    "MdnsConfig",
    "advertised_addresses",
    "find_router",
    "router_url",
    "service_info",
]

log = logging.getLogger("herd.mdns")

SERVICE_TYPE = "_herd._tcp.local."
_ALL_ADDRESSES = {"", "0.0.0.0", "::"}


class MdnsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options under ``plugins.options.mdns``.

    Attributes:
        name: The service instance name; default ``herd on <host name>``.
        addresses: Addresses to advertise; default the router's ``host``, or every
            non-loopback address of this machine when it listens on all of them.
    """

    name: str = ""
    addresses: list[str] = []


def advertised_addresses(host: str, configured: list[str]) -> list[str]:
    """The addresses a router listening on ``host`` can be reached at from the LAN."""
    if configured:
        return list(configured)
    if host not in _ALL_ADDRESSES:
        return [host]
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue  # IPv6 entries are tuples; IPv4 is enough to find a router
            address = ipaddress.ip_address(ip.ip)
            if not (address.is_loopback or address.is_link_local):
                found.append(ip.ip)
    return found


def service_info(name: str, port: int, addresses: list[str], version: str) -> ServiceInfo:
    """The ``_herd._tcp`` record for a router."""
    instance = name or f"herd on {socket.gethostname()}"
    return ServiceInfo(
        SERVICE_TYPE,
        f"{instance}.{SERVICE_TYPE}",
        port=port,
        parsed_addresses=addresses,
        properties={"scheme": "http", "version": version, "path": "/"},
    )


def router_url(info: ServiceInfo) -> str:
    """The router URL an advertisement points to ("" when it has no usable address)."""
    if not info.port:
        return ""
    properties = {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v or "")
        )
        for k, v in (info.properties or {}).items()
    }
    scheme = properties.get("scheme") or "http"
    if scheme not in ("http", "https"):
        return ""
    for address in info.parsed_addresses():
        host = f"[{address}]" if ":" in address else address
        return f"{scheme}://{host}:{info.port}"
    return ""


# One advertisement per running router, withdrawn at its shutdown.
_advertising: dict[int, tuple[AsyncZeroconf, ServiceInfo]] = {}


@hookimpl
async def herd_startup(router: Any) -> None:
    """Advertise this router on the LAN."""
    settings = router.settings
    config = msgspec.convert(settings.plugins.options.get("mdns", {}), MdnsConfig, strict=False)
    addresses = advertised_addresses(settings.host, config.addresses)
    if not addresses or all(ipaddress.ip_address(a).is_loopback for a in addresses):
        log.warning(
            "mDNS: the router listens on %s only; nothing on the network could reach it, "
            "so it is not advertised",
            settings.host,
        )
        return
    import herd

    info = service_info(config.name, settings.port, addresses, herd.__version__)
    zeroconf = AsyncZeroconf()
    await zeroconf.async_register_service(info, allow_name_change=True)
    _advertising[id(router)] = (zeroconf, info)
    log.info("mDNS: advertising %s at %s port %d", info.name, ", ".join(addresses), info.port)


@hookimpl
async def herd_shutdown(router: Any) -> None:
    """Withdraw the advertisement."""
    entry = _advertising.pop(id(router), None)
    if entry is None:
        return
    zeroconf, info = entry
    await zeroconf.async_unregister_service(info)
    await zeroconf.async_close()


def find_router(timeout: float = 5.0) -> str:
    """Browse for ``_herd._tcp`` and return the first router's URL, or "" after ``timeout``."""
    zeroconf = Zeroconf()
    names: list[str] = []
    seen = threading.Event()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            names.append(name)
            seen.set()

    browser = ServiceBrowser(zeroconf, SERVICE_TYPE, handlers=[on_change])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not seen.wait(max(0.0, deadline - time.monotonic())):
                break
            seen.clear()
            while names:
                info = zeroconf.get_service_info(SERVICE_TYPE, names.pop(0), timeout=2000)
                url = router_url(info) if info is not None else ""
                if url:
                    return url
        return ""
    finally:
        browser.cancel()
        zeroconf.close()
