"""Who may change things from the dashboard: the admin key, or this machine without one."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Any

from herd.errors import HerdError
from litestar import Request

__all__ = ["ADMIN", "actor", "require_admin"]

ADMIN = {"herd_auth": "admin"}
"""Route option: the client-key middleware leaves these routes to :func:`require_admin`."""


def require_admin(request: Request[Any, Any, Any]) -> None:
    """Allow a change only with the admin key (when set) or from this machine (when not).

    Raises:
        HerdError: 401 without the right bearer token; 403 from another machine with no
            admin key configured.
    """
    key = request.app.state.router.settings.auth.admin_key
    if key:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            _digest(presented.strip()), _digest(key)
        ):
            raise HerdError(401, "missing or wrong admin key (Authorization: Bearer <key>)")
        return
    client = request.scope.get("client")
    if not client or not _is_loopback(str(client[0])):
        raise HerdError(
            403, "with no auth.admin_key configured, only clients on this machine may do this"
        )


def actor(request: Request[Any, Any, Any]) -> str:
    """Who did a change, for its log line and trace: ``admin`` or ``local``."""
    return "admin" if request.app.state.router.settings.auth.admin_key else "local"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
