"""The extension API: every hook a herd plugin can implement.

A plugin is a module or object with functions marked ``@herd.hookimpl``; third-party
plugins are found through the entry-point group ``herd``. Hooks register *classes*;
the router builds objects from them. Hook calls are synchronous (pluggy has no async
calls); where a hook returns an awaitable, the router awaits it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from herd.interfaces import Backend, FallbackPolicy, Signal, TraceSink
    from herd.router import Router
    from herd.settings import Settings
    from herd.shared_state import SharedState
    from herd.trace import RequestTrace

PROJECT = "herd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def herd_register_backends() -> list[type[Backend]]:
    """Register backend classes, one per node type.

    Returns:
        Backend subclasses; each ``name`` is a node ``type`` in YAML.

    Example:
        >>> @hookimpl
        ... def herd_register_backends():
        ...     return [MyVllmBackend]
    """


@hookspec
def herd_register_signals() -> list[type[Signal]]:
    """Register scoring signals.

    Returns:
        Signal subclasses; YAML tunes each under ``routing.signals.<name>``.

    Example:
        >>> @hookimpl
        ... def herd_register_signals():
        ...     return [PreferNamedSignal]
    """


@hookspec
def herd_register_fallback_policies() -> list[type[FallbackPolicy]]:
    """Register fallback policies; YAML ``routing.fallback`` picks one by name.

    Returns:
        FallbackPolicy subclasses.

    Example:
        >>> @hookimpl
        ... def herd_register_fallback_policies():
        ...     return [SameRackFirstPolicy]
    """


@hookspec
def herd_register_sinks() -> list[type[TraceSink]]:
    """Register trace sinks (DuckDB, OpenTelemetry, ...).

    Returns:
        TraceSink subclasses.

    Example:
        >>> @hookimpl
        ... def herd_register_sinks():
        ...     return [JsonlSink]
    """


@hookspec
def herd_register_state_stores() -> list[type[SharedState]]:
    """Register stores replicas share state through (see :mod:`herd.shared_state`).

    The router uses the store whose ``schemes`` include the scheme of
    ``cluster.redis_url``; with no URL it runs alone and uses none.

    Returns:
        SharedState subclasses.

    Example:
        >>> @hookimpl
        ... def herd_register_state_stores():
        ...     return [EtcdState]  # schemes = ("etcd",)
    """


@hookspec
def herd_register_litestar_plugins(settings: Settings) -> list[Any]:
    """Add Litestar plugins: extra routes, middleware, OpenAPI tweaks.

    Args:
        settings: The router's settings.

    Returns:
        Litestar plugin objects (``InitPluginProtocol`` and friends).

    Example:
        >>> @hookimpl
        ... def herd_register_litestar_plugins(settings):
        ...     return [MyRoutesPlugin()]
    """


@hookspec(firstresult=True)
def herd_resolve_model(model: str, api: str, settings: Settings) -> str | None:
    """Map the model name a client sent to the model to serve (aliases).

    The first non-None answer wins; the built-in alias resolver runs last.

    Args:
        model: The name the client sent.
        api: ``ollama``, ``openai`` (Chat Completions and Responses) or ``anthropic``.
        settings: The router's settings.

    Returns:
        A model name, or None to let the next plugin decide.

    Example:
        >>> @hookimpl
        ... def herd_resolve_model(model, api, settings):
        ...     return "gpt-oss:20b" if model == "gpt-4o" else None
    """


@hookspec
def herd_startup(router: Router) -> Awaitable[None] | None:
    """Run when the router starts, after the fleet is built.

    Args:
        router: The running router (:class:`herd.router.Router`: settings, node views,
            queues, sinks, model operations).

    Returns:
        None, or an awaitable the router awaits.

    Example:
        >>> @hookimpl
        ... def herd_startup(router):
        ...     log.info("my plugin is up; %d nodes", len(router.nodes()))
    """


@hookspec
def herd_shutdown(router: Router) -> Awaitable[None] | None:
    """Run when the router stops, before the sinks flush.

    Args:
        router: The running router (:class:`herd.router.Router`).

    Returns:
        None, or an awaitable the router awaits.

    Example:
        >>> @hookimpl
        ... async def herd_shutdown(router):
        ...     await my_client.aclose()
    """


@hookspec
def herd_request_finished(trace: RequestTrace) -> None:
    """See every finished request. Must not block: hand slow work to a task or queue.

    Args:
        trace: The request's trace.

    Example:
        >>> @hookimpl
        ... def herd_request_finished(trace):
        ...     COUNTER[trace.node] += 1
    """
