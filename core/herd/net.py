"""Network facts every herd program shares: which addresses are this machine's own.

One loopback check for the router, the node agent and the emulator, so that "only from
this machine" means the same thing everywhere.

Example:
    >>> is_loopback_host("127.0.0.1"), is_loopback_host("[::1]"), is_loopback_host("gpu.lan")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

__all__ = ["is_loopback_client", "is_loopback_host"]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``) and loopback addresses
    (``127.0.0.0/8``, ``::1``, also in brackets or as IPv4-mapped IPv6)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def is_loopback_client(scope: Mapping[str, Any]) -> bool:
    """Whether an ASGI connection comes from this machine (its peer address, never a
    header a client could write)."""
    client = scope.get("client")
    return bool(client) and is_loopback_host(str(client[0]))
