"""Network facts every herd program shares: which addresses are this machine's own, and
how to say in plain words why an exchange with a node failed.

One loopback check for the router, the node agent and the emulator, so that "only from
this machine" means the same thing everywhere.

Example:
    >>> is_loopback_host("127.0.0.1"), is_loopback_host("[::1]"), is_loopback_host("gpu.lan")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from typing import Any

__all__ = [
    "describe_network_error",
    "is_loopback_client",
    "is_loopback_host",
    "without_credentials",
]


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


def without_credentials(url: str, mask: str = "***") -> str:
    """A URL as herd shows it (status, dashboard, logs, traces, check-config): the password
    in it (``http://user:secret@proxy``, ``redis://:secret@host``) replaced by ``mask``;
    the URL itself is used to connect.

    Example:
        >>> without_credentials("http://herd:s3cret@10.0.0.5:11434")
        'http://herd:***@10.0.0.5:11434'
    """
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:{mask}@{host}{slash}{path}"


def is_loopback_client(scope: Mapping[str, Any]) -> bool:
    """Whether an ASGI connection comes from this machine (its peer address, never a
    header a client could write)."""
    client = scope.get("client")
    return bool(client) and is_loopback_host(str(client[0]))


def describe_network_error(exc: BaseException) -> str:
    """One plain line for a failed HTTP exchange with a node, for logs, ``last_error`` and
    client error messages: ``cannot connect to 10.0.0.5:11434: Connection refused``, not
    aiohttp's ``Cannot connect to host ... ssl:default [Connect call failed (...)]``.

    Example:
        >>> describe_network_error(TimeoutError())
        'timed out'
    """
    import aiohttp  # the router's client library; imported here so agents need not load it

    from herd.node_http import NodeHttpError

    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, NodeHttpError):  # herd's own node client says it plainly already
        return str(exc)
    if isinstance(exc, aiohttp.ClientSSLError):  # the certificate's story is in its text
        return " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, socket.gaierror) or not cause.errno:
            reason = cause.strerror or str(cause)
        else:  # asyncio's own text is "Connect call failed ('10.0.0.5', 11434)"
            reason = os.strerror(cause.errno)
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the node closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):  # TransferEncodingError, ContentLengthError
        return "the connection closed before the reply was complete"
    return " ".join(str(exc).split()) or type(exc).__name__
