"""Optional client API keys (YAML ``auth.api_keys``): who may use the router.

With no keys configured nothing is installed, so the hot path pays nothing. With keys,
an ASGI middleware checks ``Authorization: Bearer <key>`` on every routed request except
the open ones (``/``, ``/healthz``), the agents' heartbeat (it has the node token) and the
admin routes when an ``auth.admin_key`` guards them; the admin key itself is accepted as a
client key named ``admin``. Anthropic's clients send ``x-api-key: <key>``, accepted
when there is no bearer key. A missing or wrong key is a 401 in the
client's protocol (Ollama ``{"error": ...}``, OpenAI's error object on ``/v1``). Keys are
compared in constant time (SHA-256 digests through :func:`hmac.compare_digest`, every key
every time) and never logged; the matching key's *name* is what traces and tags see.

A plugin route that does its own authentication marks itself with
``opt={"herd_auth": "public" | "node" | "admin"}``.

Example:
    >>> keys = ClientKeys([("ci", "s3cret-key")])
    >>> keys.name_for("s3cret-key"), keys.name_for("wrong")
    ('ci', None)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from herd._engine.audit import audit
from herd.errors import HerdError
from herd.settings import Settings

__all__ = ["ClientKeyMiddleware", "ClientKeys", "api_key_name", "client_key_middleware"]

log = logging.getLogger("herd.auth")

SCOPE_KEY = "herd_api_key"
"""Where the middleware leaves the matching key's name in the ASGI scope."""

PUBLIC_PATHS = frozenset({"/", "/healthz"})
NODE_PATHS = frozenset({"/fleet/heartbeat"})
ADMIN_PREFIXES = ("/fleet/nodes/",)


class ClientKeys:
    """The configured keys as digests; looks up which key (by name) a client presented."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        self._digests = [(_digest(key), name) for name, key in keys]

    def name_for(self, presented: str) -> str | None:
        """The name of the key ``presented`` matches, or None; time does not depend on which."""
        digest = _digest(presented)
        found = None
        for expected, name in self._digests:
            if hmac.compare_digest(expected, digest):
                found = name
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ClientKeyMiddleware:
    """Requires a client API key on every routed request that is not exempt."""

    __slots__ = ("_admin_key_set", "_keys", "app")

    def __init__(self, app: ASGIApp, keys: ClientKeys, admin_key_set: bool) -> None:
        self.app = app
        self._keys = keys
        self._admin_key_set = admin_key_set

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._exempt(scope):
            scope[SCOPE_KEY] = self._check(scope)  # type: ignore[literal-required]
        await self.app(scope, receive, send)

    def _exempt(self, scope: Scope) -> bool:
        path = scope["path"]
        if path in PUBLIC_PATHS or path in NODE_PATHS:
            return True
        handler = scope.get("route_handler")
        kind = handler.opt.get("herd_auth") if handler is not None else None
        if kind in ("public", "node"):
            return True
        return self._admin_key_set and (kind == "admin" or path.startswith(ADMIN_PREFIXES))

    def _check(self, scope: Scope) -> str:
        authorization = api_key = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":  # Anthropic's clients send the key here
                api_key = value
        scheme, _, credential = authorization.decode("latin-1").strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            credential = api_key.decode("latin-1").strip()
        if not credential:
            audit("refused key", scope, level=30, path=scope["path"], reason="no key")
            raise HerdError(
                401,
                "missing API key: send Authorization: Bearer <key>",
                code="invalid_api_key",
            )
        name = self._keys.name_for(credential)
        if name is None:
            audit("refused key", scope, level=30, path=scope["path"], reason="wrong key")
            raise HerdError(401, "incorrect API key provided", code="invalid_api_key")
        return name


def client_key_middleware(settings: Settings) -> list[DefineMiddleware]:
    """The middleware for ``create_app``: none when no client keys are configured."""
    keys = settings.auth.api_keys
    if not keys:
        if not _is_loopback(settings.host):
            log.warning(
                "herd listens on %s with no auth.api_keys: anyone who can reach it can use it",
                settings.host or "all addresses",
            )
        return []
    admin_key = getattr(settings.auth, "admin_key", "")
    admin_key_set = bool(admin_key)
    named = [(k.name, k.key) for k in keys]
    if admin_key:  # the operator's key reads what any client may (the dashboard, /api/tags)
        named.append(("admin", admin_key))
    client_keys = ClientKeys(named)
    return [DefineMiddleware(ClientKeyMiddleware, keys=client_keys, admin_key_set=admin_key_set)]


def api_key_name(request: Any) -> str:
    """The name of the API key a request was authorised with ("" when keys are off)."""
    return request.scope.get(SCOPE_KEY, "")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
