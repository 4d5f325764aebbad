"""The inference routes served straight from ASGI, in front of Litestar's request machinery.

A streamed chat costs the router well under two milliseconds of CPU, and Litestar's part
of it (its router, exception and middleware layers, a ``Request`` with a connection cache,
the handler's signature model) was a tenth. The inference routes need none of it: their
handlers read the body, the scope and a few headers. So ``DirectRoutes`` answers
``POST`` on those paths itself and passes everything else to Litestar untouched.

It applies the same rules in the same order as the Litestar path: the client-key check
(:class:`~herd._engine.auth.AccessMiddleware`), the body's size, time and JSON bounds
(:class:`~herd._engine.guard.RequestGuard`), the same handler function, and errors
rendered by the app's own exception handlers, so a client sees the same answer either way
(``tests/core/test_direct_routes.py`` holds the two paths to that).

It stands aside when a plugin could expect Litestar's layers around these routes: any
middleware, guard, hook or response header beyond herd's own turns it off for the whole
app (:func:`direct_routes`), and every request then goes through Litestar as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from herd._engine.auth import AccessMiddleware
from herd._engine.guard import RequestGuard
from herd.errors import HerdError
from herd.header_text import decode_header_pairs

__all__ = ["DIRECT_PATHS", "DirectRequest", "DirectRoutes", "direct_routes"]

log = logging.getLogger("herd")

DIRECT_PATHS = (
    "/api/chat",
    "/api/generate",
    "/api/embed",
    "/api/embeddings",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
)
"""The client routes served directly (``POST`` only; other methods get Litestar's 405)."""

Handler = Callable[[Any], Awaitable[Any]]


class _Headers(dict[str, str]):
    """A request's headers by lower-case name (the first of repeated ones, as Litestar's)."""

    __slots__ = ()

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, name.lower(), default)


class _Url:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class DirectRequest:
    """What herd's inference handlers read of a request, without Litestar's ``Request``."""

    __slots__ = ("_body", "_headers", "app", "scope")

    def __init__(self, app: Any, scope: Any, body: bytes = b"") -> None:
        self.app = app
        self.scope = scope
        self._body = body
        self._headers: _Headers | None = None

    @property
    def headers(self) -> _Headers:
        headers = self._headers
        if headers is None:
            # (reversed: the first of repeated names is kept)
            headers = self._headers = _Headers(decode_header_pairs(self.scope["headers"][::-1]))
        return headers

    @property
    def method(self) -> str:
        return self.scope["method"]

    @property
    def url(self) -> _Url:
        return _Url(self.scope["path"])

    async def body(self) -> bytes:
        return self._body


class DirectRoutes:
    """The ASGI app described in the module docstring, in front of Litestar's handler."""

    __slots__ = ("_access", "_errors", "_guard", "_litestar", "_routes", "app")

    def __init__(
        self,
        app: Any,
        litestar: Any,
        routes: Mapping[str, Handler],
        access: AccessMiddleware,
        guard: RequestGuard,
        errors: Mapping[type[BaseException], Callable[[Any, Any], Any]],
    ) -> None:
        self.app = app
        self._litestar = litestar
        self._routes = dict(routes)
        self._access = access
        self._guard = guard
        self._errors = errors

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        handler = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = DirectRequest(self._litestar, scope)
        try:
            self._access.admit_client(scope)
            body = await self._guard.read(scope, receive, send)
            if body is None:
                return  # answered (408) or the client left
            request._body = body
            response = await handler(request)
        except Exception as exc:
            response = self._error_response(request, exc)
        await response.to_asgi_response(None, request, status_code=200)(scope, receive, send)

    @property
    def paths(self) -> list[str]:
        """The paths served directly."""
        return list(self._routes)

    def _error_response(self, request: DirectRequest, exc: Exception) -> Any:
        for kind in type(exc).__mro__:
            render = self._errors.get(kind)
            if render is not None:
                return render(request, exc)
        raise exc  # pragma: no cover - the app handles Exception


def direct_routes(app: Any, own_middleware: list[Any]) -> Any:
    """``app``'s handler with :class:`DirectRoutes` in front, or as it is when a plugin
    added layers the direct path would skip (then Litestar serves every request).

    Args:
        app: The built Litestar app.
        own_middleware: herd's own middleware definitions, as given to Litestar (the
            access rules and the request guard): the direct path runs the same ones.
    """
    layered = (
        list(app.middleware) != own_middleware
        or app.guards
        or app.before_request
        or app.after_request
        or app.after_response
        or app.response_headers
        or app.response_cookies
    )
    routes: dict[str, Handler] = {}
    for path in DIRECT_PATHS:
        handler = app.route_handler_method_map.get(path, {}).get("POST")
        if handler is None or handler.opt.get("herd_auth") is not None:
            continue
        if handler.middleware or handler.guards or handler.before_request:
            continue
        routes[path] = handler.fn
    handlers = app.exception_handlers
    errors = {kind: handlers[kind] for kind in handlers if isinstance(kind, type)}
    if layered or not routes or HerdError not in errors or Exception not in errors:
        log.debug("inference routes served through Litestar (a plugin adds layers)")
        return app.asgi_handler
    layers = [define(None) for define in own_middleware]  # each around no app: called piecewise
    access = next(layer for layer in layers if isinstance(layer, AccessMiddleware))
    guard = next(layer for layer in layers if isinstance(layer, RequestGuard))
    return DirectRoutes(app.asgi_handler, app, routes, access, guard, errors)


class DirectLane:
    """The app behind the CORS gate, served straight from the server for a request nothing
    in front of it would change: no ``Origin`` (the CORS gate lets it through as it is) and
    no ``X-Forwarded-For``/``-Proto`` (uvicorn's proxy-headers middleware leaves its scope
    as it is), to a direct route. The server (``server.py``) hands such a request here, past
    those two layers and Litestar's own entry, whose part (the app in the scope) is done
    here.

    Args:
        litestar: The Litestar app (no ``before_send`` hooks).
        gate: Its CORS gate, whose ``app`` (the direct routes, whose paths take the lane)
            is called.
    """

    __slots__ = ("gate", "litestar", "urls")

    def __init__(self, litestar: Any, gate: Any) -> None:
        self.litestar = litestar
        self.gate = gate
        #: request targets served here, as the request line has them (no query, no escapes)
        self.urls = frozenset(path.encode("ascii") for path in gate.app.paths)

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        # (the direct routes' own coroutine, returned: one level fewer for every await
        # under it to pass through)
        scope["app"] = scope["litestar_app"] = self.litestar
        scope.setdefault("state", {})
        return self.gate.app(scope, receive, send)


def direct_lane(litestar: Any, gate: Any) -> DirectLane | None:
    """The lane past the outer layers, when the app behind the CORS ``gate`` is the direct
    routes and Litestar adds nothing to ``send``; else None."""
    if not isinstance(gate.app, DirectRoutes) or litestar.before_send:
        return None
    return DirectLane(litestar, gate)
