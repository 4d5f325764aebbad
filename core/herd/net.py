"""Network facts every herd program shares: which addresses are this machine's own, and
how to say in plain words why an exchange with a node failed.

One loopback check for the router, the node agent and the emulator, so that "only from
this machine" means the same thing everywhere.

Example:
    >>> is_loopback_host("127.0.0.1"), is_loopback_host("[::1]"), is_loopback_host("gpu.lan")
    (True, True, False)
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "describe_network_error",
    "is_loopback_client",
    "is_loopback_host",
    "open_files_limit",
    "out_of_local_resources",
    "raise_open_files_limit",
    "takes_proxy_from_environment",
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


def takes_proxy_from_environment(url: str) -> bool:
    """Whether an HTTP client for ``url`` should use the proxy the environment names
    (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``): not for this machine, which no proxy
    can reach for it. Go's clients (the ``ollama`` CLI's among them) never send loopback
    traffic to a proxy either; httpx would, unless ``NO_PROXY`` says otherwise.

    Example:
        >>> takes_proxy_from_environment("http://127.0.0.1:11435")
        False
    """
    return not is_loopback_host(urlsplit(url.strip()).hostname or "")


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


#: errno values that say this machine ran out of something (file descriptors, buffers,
#: memory) while opening or using a connection: the router's own trouble, not the peer's
_LOCAL_EXHAUSTION = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def out_of_local_resources(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is this machine running out of
    file descriptors, socket buffers or memory: a failure no node is to blame for.

    Example:
        >>> out_of_local_resources(OSError(errno.EMFILE, "Too many open files"))
        True
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 16:  # (a bounded walk down __cause__/__context__)
        if isinstance(current, OSError) and current.errno in _LOCAL_EXHAUSTION:
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def open_files_limit() -> int:
    """This process's limit on open files (its soft ``RLIMIT_NOFILE``); 0 when unknown."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 0
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 30


def raise_open_files_limit() -> int:
    """Raise this process's limit on open files to what the system lets it have, as Go
    programs (Ollama among them) do at start: a shell's default soft limit (1,024 on
    Linux, 256 on macOS) is two file descriptors per stream, far below what the hard limit
    allows. macOS refuses a soft limit past ``kern.maxfilesperproc`` even with no hard
    limit, so lower targets are tried next.

    Returns:
        The limit in force afterwards (0 when unknown).
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    best = hard if hard != resource.RLIM_INFINITY else 1 << 20
    for target in (best, 65536, 10240):
        if soft != resource.RLIM_INFINITY and soft >= target:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        break
    return open_files_limit()
