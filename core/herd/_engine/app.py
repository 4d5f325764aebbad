"""``create_app(settings) -> Litestar``: the router as an ASGI app."""

from __future__ import annotations

import logging
from typing import Any

import pluggy
from litestar import Litestar, MediaType, Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException

from herd._engine.auth import access_middleware
from herd._engine.cors import CorsGate
from herd._engine.direct import direct_lane, direct_routes
from herd._engine.gateway import Gateway
from herd._engine.guard import guard_middleware
from herd._engine.plugins import make_plugin_manager
from herd._engine.render import is_openai_path, render_error
from herd._engine.routes import (
    anthropic,
    fleet_api,
    fleet_routing,
    health,
    ollama_inference,
    ollama_models,
    openai_inference,
    openai_models,
    responses,
    workload_images,
    workload_transcribe,
)
from herd.errors import HerdError
from herd.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("herd")


def _is_openai(request: Request[Any, Any, Any]) -> bool:
    return is_openai_path(request.url.path)


def _herd_error(request: Request[Any, Any, Any], exc: HerdError) -> Response[bytes]:
    return render_error(
        request,
        exc.status,
        exc.message,
        retry_after=exc.retry_after,
        code=exc.code,
        param=exc.param,
    )


def _not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[bytes]:
    if _is_openai(request):
        return render_error(request, 404, f"unknown path {request.url.path}")
    return Response(b"404 page not found", status_code=404, media_type=MediaType.TEXT)


def _not_allowed(
    request: Request[Any, Any, Any], exc: MethodNotAllowedException
) -> Response[bytes]:
    if _is_openai(request):
        return render_error(request, 405, f"method {request.method} not allowed here")
    return Response(b"405 method not allowed", status_code=405, media_type=MediaType.TEXT)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    message = str(exc.detail)
    if isinstance(exc.extra, list) and exc.extra:  # Litestar's parameter validation: name them
        problems = [
            f"{item.get('key', '?')}: {item.get('message', 'invalid')}"
            for item in exc.extra
            if isinstance(item, dict)
        ]
        if problems:
            message = f"{message} ({'; '.join(problems)})"
    return render_error(request, exc.status_code, message)


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    # the guard refuses JSON nested deeper than herd.protocol.limits.MAX_JSON_DEPTH; this
    # catches what its fast scan cannot see (brackets hidden in strings, ~1000 levels deep)
    return render_error(request, 400, "invalid JSON: nested too deeply")


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    return render_error(request, 500, f"internal error in herd: {type(exc).__name__}: {exc}")


def _remembering_failure(start: Any, failures: list[BaseException]) -> Any:
    """Keep why start-up failed, so ``herd`` can say it in one line (not a traceback)."""

    async def start_and_remember() -> None:
        try:
            await start()
        except Exception as exc:
            failures.append(exc)
            raise

    return start_and_remember


def create_app(
    settings: Settings | None = None, *, pm: pluggy.PluginManager | None = None
) -> Litestar:
    """Build the router.

    Args:
        settings: Validated settings (defaults when None).
        pm: A plugin manager (a new one from the settings when None).

    Returns:
        A Litestar app; its ``state.gateway`` is the :class:`~herd._engine.gateway.Gateway`.

    Example:
        from herd._engine.config import load_settings
        >>> app = create_app(load_settings(None, env={}))
    """
    settings = settings or Settings()
    pm = pm or make_plugin_manager(settings)
    gateway = Gateway(settings, pm)
    startup_failures: list[BaseException] = []
    extra_plugins = [
        p
        for batch in pm.hook.herd_register_litestar_plugins(settings=settings)
        for p in batch or []
    ]
    own_middleware = [*access_middleware(settings), *guard_middleware(settings)]
    app = Litestar(
        route_handlers=[
            *health.ROUTES,
            *ollama_inference.ROUTES,
            *ollama_models.ROUTES,
            *fleet_api.ROUTES,
            *fleet_routing.ROUTES,
            *openai_inference.ROUTES,
            *openai_models.ROUTES,
            *anthropic.ROUTES,
            *responses.ROUTES,
            *workload_transcribe.ROUTES,
            *workload_images.ROUTES,
        ],
        middleware=own_middleware,
        plugins=extra_plugins,
        on_startup=[_remembering_failure(gateway.start, startup_failures)],
        on_shutdown=[gateway.stop],
        exception_handlers={
            HerdError: _herd_error,
            NotFoundException: _not_found,
            MethodNotAllowedException: _not_allowed,
            HTTPException: _http_error,
            RecursionError: _too_deep,
            Exception: _internal_error,
        },
        request_max_body_size=settings.limits.max_body_bytes,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    # where Litestar puts its own CORS middleware: in front of its exception handlers, so
    # the headers reach error answers too
    handler = direct_routes(app, own_middleware)
    app.asgi_handler = CorsGate(handler, settings.auth.allowed_origins)
    app.state.direct_lane = direct_lane(app, app.asgi_handler)  # (see server.py)
    app.state.startup_failures = startup_failures
    app.state.gateway = gateway
    app.state.router = gateway  # what plugins' routes use: the public herd.router.Router
    return app
