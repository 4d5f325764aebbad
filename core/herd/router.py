"""What hooks and plugins see of the running router: the :class:`Router` protocol.

Hooks (``herd_startup``, ``herd_shutdown``) receive a ``Router``; a Litestar route added by
a plugin finds the same object at ``request.app.state.router``. It is the whole surface a
plugin may use: the engine behind it is private and may change between releases.

Access control is not a method: a plugin's Litestar route declares who may call it with
``opt={"herd_auth": "admin"}`` (the admin key when one is set, else only clients on the
router's machine; foreign ``Origin`` and non-JSON bodies refused), ``"public"`` or
``"node"``; any other route is a client route (a client API key when keys are set). The
router enforces the mark before the handler runs, so a plugin never checks keys itself.

Example:
    >>> @hookimpl
    ... def herd_startup(router):
    ...     online = [n.name for n in router.nodes() if n.status == "online"]
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import aiohttp

    from herd.interfaces import TraceSink
    from herd.node_view import NodeView
    from herd.settings import Settings

__all__ = ["Router"]


@runtime_checkable
class Router(Protocol):
    """The running router, as plugins see it.

    Attributes:
        settings: The effective configuration (YAML, environment, flags, live changes).
        http: The router's shared aiohttp session (one per app); never close it.
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def http(self) -> aiohttp.ClientSession: ...

    def nodes(self) -> list[NodeView]:
        """A snapshot view of every node the router knows, in any state."""
        ...

    def node(self, name: str) -> NodeView | None:
        """One node's view by name, or None."""
        ...

    def queue_stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per node and model: ``pending``, ``in_flight``, ``done``, ``failed``,
        ``concurrency`` and its ``source`` (agent, yaml, assumed, learned)."""
        ...

    @property
    def sinks(self) -> Sequence[TraceSink]:
        """The trace sinks that are running (DuckDB, OpenTelemetry, ...)."""
        ...

    def settings_view(self) -> dict[str, Any]:
        """The live settings (toggles, weights, overrides; secrets redacted)."""
        ...

    def update_settings(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply and persist a live settings change; returns what changed, by key.

        Raises:
            herd.errors.HerdError: 400 naming every unknown or ill-typed key.
        """
        ...

    def pull_model(self, node: str, model: str) -> AsyncIterator[dict[str, Any]]:
        """Pull a model onto a node, yielding the node's progress events as dicts
        (``status``, and ``total`` / ``completed`` while downloading).

        Raises:
            herd.errors.HerdError: 404 for an unknown node, 502 when the node fails.
        """
        ...

    async def delete_model(self, node: str, model: str) -> None:
        """Delete a model from a node's disk."""
        ...

    async def unload_model(self, node: str, model: str) -> None:
        """Unload a model from a node's memory (``keep_alive: 0``)."""
        ...

    def set_draining(self, node: str, draining: bool) -> None:
        """Stop (or resume) sending new requests to a node; in-flight ones finish."""
        ...

    def cluster_status(self) -> dict[str, Any]:
        """With ``cluster.redis_url``: this replica's ``replica`` id, ``state`` (``shared``,
        or ``degraded`` while the store is unreachable), ``replicas``, ``poller``,
        ``outages``, ``last_error``. Empty when the router runs alone."""

    # -- what the queues hold now (the dashboard's live queue) ---------------------------

    def queue_snapshot(self) -> dict[str, Any]:
        """Every request waiting in or running through the router's queues, right now.

        Returns:
            ``{"held", "reaped", "max_queue_depth", "requests": [...]}``: ``held`` counts
            requests that found every queue full, ``reaped`` the stalled requests ended
            since start; each request is ``{"id", "kind", "endpoint", "api", "model",
            "node", "state" ("running" | "queued"), "position" (queued only),
            "received_at", "tags"}``.
        """
        ...
