"""Who may call which route: the one admin check, client API keys, and CSRF refusal.

Every route is one of four kinds, named by ``opt={"herd_auth": ...}`` on its handler
(built-in routes and plugin routes alike; a plugin needs no import for this):

- ``"public"``: anyone (``/``, ``/healthz``).
- ``"node"``: herd-node agents; the route itself checks the node token.
- ``"admin"``: changes the fleet (drain, pull, delete, settings, benchmarks). With
  ``auth.admin_key`` set it needs ``Authorization: Bearer <admin key>``; with none, only a
  client on this machine may call it. Client API keys never open an admin route.
- anything else is a client route: with ``auth.api_keys`` set it needs one of them (the
  admin key counts as a client key named ``admin``).

Admin and node routes change state, so a browser must not be able to reach them from
another site: they refuse a foreign ``Origin`` (or ``Sec-Fetch-Site: cross-site``) and any
body that is not ``application/json`` (the "simple" ``text/plain`` and form posts a web page
may send without asking). See ``docs/security.md``.

Keys are compared in constant time (SHA-256 digests through :func:`hmac.compare_digest`,
every key every time) and never logged; the matching key's *name* is what traces see.

Example:
    >>> keys = ClientKeys([("ci", "s3cret-key")])
    >>> keys.name_for("s3cret-key"), keys.name_for("wrong")
    ('ci', None)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import Any

from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from herd._engine.audit import audit
from herd.errors import HerdError
from herd.net import is_loopback_client, is_loopback_host
from herd.settings import Settings

__all__ = [
    "AccessMiddleware",
    "ClientKeys",
    "access_middleware",
    "api_key_name",
    "check_admin",
    "check_same_site",
    "header",
    "is_same_site",
    "route_kind",
]

log = logging.getLogger("herd.auth")

SCOPE_KEY = "herd_api_key"
"""Where the middleware leaves the matching key's name in the ASGI scope."""

PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz"})
NODE_PATHS = frozenset({"/fleet/heartbeat"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


def _bearer(scope: Scope) -> str:
    scheme, _, credential = header(scope, b"authorization").decode("latin-1").partition(" ")
    return credential.strip() if scheme.strip().lower() == "bearer" else ""


def route_kind(scope: Scope) -> str:
    """``public``, ``node``, ``admin`` or ``client`` for the route a request was routed to."""
    path = scope["path"]
    if path in PUBLIC_PATHS:
        return "public"
    if path in NODE_PATHS:
        return "node"
    handler = scope.get("route_handler")
    kind = handler.opt.get("herd_auth") if handler is not None else None
    return kind if kind in ("public", "node", "admin") else "client"


def check_admin(scope: Scope, admin_key: str) -> None:
    """The one admin check: the admin key when one is set, else a client on this machine.

    Raises:
        HerdError: 401 without the right admin key; 403 from another machine when no
            admin key is configured.
    """
    if admin_key:
        if not hmac.compare_digest(_digest(_bearer(scope)), _digest(admin_key)):
            raise HerdError(401, "missing or wrong admin key (Authorization: Bearer <key>)")
        return
    if not is_loopback_client(scope):
        raise HerdError(
            403, "with no auth.admin_key configured, only clients on this machine may do this"
        )


def header(scope: Scope, wanted: bytes) -> bytes:
    """A request header's value (``wanted`` in lower case; b"" when absent)."""
    for name, value in scope["headers"]:
        if name == wanted:
            return value
    return b""


def is_same_site(scope: Scope, origin: str) -> bool:
    """The page sending ``origin`` (lower case) is herd's own: it names the host the request
    was sent to, as this server or a proxy in front of it saw it (a page on another site
    cannot set X-Forwarded-Host without a CORS preflight herd refuses)."""
    hosts = {
        header(scope, b"host").decode("latin-1").strip().lower(),
        header(scope, b"x-forwarded-host").decode("latin-1").strip().lower(),
    } - {""}
    return origin.partition("://")[2] in hosts


def check_same_site(scope: Scope) -> None:
    """Refuse what a web page on another site could make a browser send (CSRF).

    Raises:
        HerdError: 403 for a foreign ``Origin``; 415 for a body that is not JSON.
    """
    if scope["method"] in _SAFE_METHODS:
        return
    origin = header(scope, b"origin").decode("latin-1").strip().lower()
    if origin:
        if not is_same_site(scope, origin):
            raise HerdError(403, f"cross-site request refused (Origin {origin[:100]})")
    elif header(scope, b"sec-fetch-site").strip().lower() == b"cross-site":
        raise HerdError(403, "cross-site request refused (Sec-Fetch-Site: cross-site)")
    media = header(scope, b"content-type").split(b";", 1)[0].strip().lower()
    if media and media != b"application/json":
        raise HerdError(415, "send the body as JSON (Content-Type: application/json)")


class AccessMiddleware:
    """Applies :func:`route_kind`'s rule to every routed request."""

    __slots__ = ("_admin_key", "_keys", "app")

    def __init__(self, app: ASGIApp, keys: ClientKeys | None, admin_key: str) -> None:
        self.app = app
        self._keys = keys
        self._admin_key = admin_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            kind = route_kind(scope)
            if kind == "admin":
                check_same_site(scope)
                check_admin(scope, self._admin_key)
                if self._admin_key:
                    scope[SCOPE_KEY] = "admin"  # type: ignore[literal-required]
            elif kind == "node":
                check_same_site(scope)
            elif kind == "client":
                self.admit_client(scope)
        await self.app(scope, receive, send)

    def admit_client(self, scope: Scope) -> None:
        """A client route's rule: one of the API keys when keys are set (its name kept)."""
        if self._keys is not None:
            scope[SCOPE_KEY] = self._check(scope)  # type: ignore[literal-required]

    def _check(self, scope: Scope) -> str:
        # Anthropic's clients send the key as x-api-key instead of a bearer token.
        credential = _bearer(scope) or header(scope, b"x-api-key").decode("latin-1").strip()
        if not credential:
            audit("refused key", scope, level=30, path=scope["path"], reason="no key")
            raise HerdError(
                401,
                "missing API key: send Authorization: Bearer <key>",
                code="invalid_api_key",
            )
        name = self._keys.name_for(credential) if self._keys is not None else None
        if name is None:
            audit("refused key", scope, level=30, path=scope["path"], reason="wrong key")
            raise HerdError(401, "incorrect API key provided", code="invalid_api_key")
        return name


def access_middleware(settings: Settings) -> list[DefineMiddleware]:
    """The middleware for ``create_app`` (always one: admin routes need it even with no keys)."""
    keys = settings.auth.api_keys
    admin_key = settings.auth.admin_key
    if not keys and not is_loopback_host(settings.host):
        log.warning(
            "herd listens on %s with no auth.api_keys: anyone who can reach it can use it",
            settings.host or "all addresses",
        )
    client_keys = None
    if keys:
        named = [(k.name, k.key) for k in keys]
        if admin_key:  # the operator's key reads what any client may (the dashboard, /api/tags)
            named.append(("admin", admin_key))
        client_keys = ClientKeys(named)
    return [DefineMiddleware(AccessMiddleware, keys=client_keys, admin_key=admin_key)]


def api_key_name(request: Any) -> str:
    """The name of the API key a request was authorised with ("" when keys are off)."""
    return request.scope.get(SCOPE_KEY, "")
