"""The router's state for one app: settings, plugins, fleet, scheduler and sinks."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import aiohttp
import msgspec
import pluggy

from herd._engine.cluster import ClusterLink, state_store_for
from herd._engine.fleet.registry import Fleet
from herd._engine.hook_calls import FirstAnswer
from herd._engine.live_settings import LiveSettings
from herd._engine.plugins import PluginLoadError, collect_classes
from herd._engine.scheduling.auto_pull import pull_target
from herd._engine.scheduling.scheduler import Scheduler
from herd.errors import HerdError
from herd.interfaces import (
    BackendContext,
    FallbackPolicy,
    NodeFailure,
    Signal,
    TraceSink,
    UpstreamReply,
)
from herd.names import normalize_model_name
from herd.node_http import USER_AGENT
from herd.node_view import NodeView
from herd.settings import Settings
from herd.trace import RequestTrace

__all__ = ["Gateway"]

log = logging.getLogger("herd")


class Gateway:
    """Everything one running router holds. Built by :func:`herd._engine.app.create_app`.

    Attributes:
        settings: The validated configuration.
        pm: This app's plugin manager.
        fleet: The nodes and their state (after :meth:`start`).
        scheduler: Picks the node for each request (after :meth:`start`).
        sinks: The trace sinks that receive every finished request.
    """

    def __init__(self, settings: Settings, pm: pluggy.PluginManager) -> None:
        self.settings = settings
        self.pm = pm
        self.log = log
        self.backend_classes = collect_classes(pm.hook.herd_register_backends())
        self.signal_classes = collect_classes(pm.hook.herd_register_signals())
        self.fallback_classes = collect_classes(pm.hook.herd_register_fallback_policies())
        self.sink_classes = collect_classes(pm.hook.herd_register_sinks())
        self.signals = self._make_signals()
        self._observers = [s for s in self.signals if type(s).observe is not Signal.observe]
        self.fallback = self._make_fallback()
        self.live_settings = LiveSettings(self)
        self.sinks: list[TraceSink] = []
        self.http: aiohttp.ClientSession | None = None
        self.fleet: Fleet | None = None
        self.scheduler: Scheduler | None = None
        self._finished_hook = pm.hook.herd_request_finished
        #: ``herd_resolve_model``, called per request without pluggy's machinery
        self.resolve_hook = FirstAnswer(pm.hook.herd_resolve_model)
        self._has_finished_impls = bool(self._finished_hook.get_hookimpls())
        self.cluster: ClusterLink | None = None  # only with cluster.redis_url

    def _make_signals(self) -> list[Signal]:
        options = self.settings.routing.signals
        unknown = set(options) - set(self.signal_classes)
        if unknown:
            known = ", ".join(sorted(self.signal_classes))
            raise PluginLoadError(
                f"routing.signals names unknown signals: {', '.join(sorted(unknown))} "
                f"(known: {known})"
            )
        signals = []
        for name, cls in self.signal_classes.items():
            config = _convert(options.get(name, {}), cls.Config, f"routing.signals.{name}")
            signal = cls(config)
            if signal.weight != 0:
                signals.append(signal)
        return signals

    def _make_fallback(self) -> FallbackPolicy:
        name = self.settings.routing.fallback
        cls = self.fallback_classes.get(name)
        if cls is None:
            known = ", ".join(sorted(self.fallback_classes)) or "none"
            raise PluginLoadError(f"routing.fallback: unknown policy {name!r} (known: {known})")
        options = self.settings.routing.fallback_options
        return cls(_convert(options, cls.Config, "routing.fallback_options"))

    async def start(self) -> None:
        """Open the HTTP session, build the fleet, start sinks, run startup hooks."""
        self.live_settings.restore()  # the dashboard's saved overrides win over YAML
        routing = self.settings.routing
        # Idle connections are dropped after 4 s: the servers behind OpenAI-type nodes and
        # services (uvicorn under vLLM, SGLang and llama-cpp-python; llama.cpp's own) close
        # theirs after 5 s, and a request sent as one closes is lost ("server
        # disconnected"). Ollama's own replies go through herd.node_http, which retries that.
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=4),
            auto_decompress=False,
            headers={"User-Agent": USER_AGENT},
        )
        context = BackendContext(
            http=self.http,
            connect_timeout=routing.connect_timeout,
            first_byte_timeout=routing.first_byte_timeout,
            read_timeout=routing.read_timeout,
            poll_timeout=self.settings.fleet.poll_timeout,
        )
        self.fleet = Fleet(self.settings, self.backend_classes, context)
        self.scheduler = Scheduler(self.fleet, self.signals, self.fallback, routing)
        self.scheduler.start()
        plugin_options = self.settings.plugins.options
        for name, cls in self.sink_classes.items():
            config = _convert(plugin_options.get(name, {}), cls.Config, f"plugins.options.{name}")
            # data_dir "" means no files (tests): the sink is told "", not ".".
            data_dir = str(self.settings.data_path) if self.settings.data_dir else ""
            sink = cls(config, data_dir)
            await sink.start()
            self.sinks.append(sink)
        if self.settings.cluster.redis_url:
            self.cluster = ClusterLink(self, state_store_for(self.pm, self.settings.cluster))
            self.fleet.cluster = self.cluster
            await self.cluster.start()
        await self.fleet.start()
        for result in self.pm.hook.herd_startup(router=self):
            if inspect.isawaitable(result):
                await result

    async def stop(self) -> None:
        """Let cancelled requests end, run shutdown hooks, stop polling, flush sinks, close
        the session."""
        await self._let_requests_end()
        for result in self.pm.hook.herd_shutdown(router=self):
            if inspect.isawaitable(result):
                await result
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.fleet is not None:
            await self.fleet.stop()
        for sink in self.sinks:
            try:
                await sink.stop()
            except Exception:
                log.exception("trace sink %s failed to stop", sink.name)
        if self.http is not None:
            await self.http.close()

    async def _let_requests_end(self, timeout: float = 2.0) -> None:
        """The server stopped: requests it cancelled past its grace period end their
        answers (an error frame, a 503) and leave their traces before the sinks stop."""
        board = self.scheduler.board if self.scheduler is not None else None
        deadline = time.monotonic() + timeout
        while board is not None and not board.idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def resolve_model(self, model: str, api: str) -> str:
        """The model to serve for the name a client sent (aliases applied), normalised."""
        resolved = self.resolve_hook(model=model, api=api, settings=self.settings)
        return normalize_model_name(resolved or model)

    def pull_target(self, key: str) -> Any:
        """The node a pull of ``key`` should land on (the one auto-pull would choose), or
        None when no node is online to take it."""
        return pull_target(self.fleet, "text", key) or pull_target(self.fleet, "embed", key)

    def finish(self, trace: RequestTrace) -> None:
        """Hand a finished request's trace to the signals, sinks and hooks; never blocks."""
        for signal in self._observers:
            try:
                signal.observe(trace)
            except Exception:
                log.exception("signal %s failed to observe a trace", signal.name)
        for sink in self.sinks:
            try:
                sink.submit(trace)
            except Exception:
                log.exception("trace sink %s rejected a trace", sink.name)
        if self._has_finished_impls:
            try:
                self._finished_hook(trace=trace)
            except Exception:
                log.exception("a herd_request_finished hook failed")
        if self.cluster is not None:
            self.cluster.request_finished(trace)

    def learn(self, trace: RequestTrace) -> None:
        """Let the signals learn from a request another replica served (cluster mode)."""
        for signal in self._observers:
            try:
                signal.observe(trace)
            except Exception:
                log.exception("signal %s failed to observe a trace", signal.name)

    # -- the public Router protocol (herd.router): all a plugin may use -------------------

    def nodes(self) -> list[NodeView]:
        return self.fleet.views() if self.fleet is not None else []

    def node(self, name: str) -> NodeView | None:
        node = self.fleet.nodes.get(name) if self.fleet is not None else None
        return node.view if node is not None else None

    def queue_stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.scheduler.queue_stats() if self.scheduler is not None else {}

    def settings_view(self) -> dict[str, Any]:
        return self.live_settings.view()

    def update_settings(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self.live_settings.update(patch)

    def set_draining(self, node: str, draining: bool) -> None:
        try:
            self.fleet.membership.set_drain(node, draining)
        except KeyError:
            known = ", ".join(self.fleet.nodes) or "none"
            raise HerdError(404, f"node '{node}' not found (nodes: {known})") from None
        if self.cluster is not None:
            self.cluster.drain_changed(node, draining)

    def cluster_status(self) -> dict[str, Any]:
        return self.cluster.status() if self.cluster is not None else {}

    def _fleet_node(self, name: str) -> Any:
        node = self.fleet.nodes.get(name) if self.fleet is not None else None
        if node is None:
            known = ", ".join(self.fleet.nodes) if self.fleet is not None else ""
            raise HerdError(404, f"node '{name}' not found (nodes: {known or 'none'})")
        return node

    async def pull_model(self, node: str, model: str) -> AsyncIterator[dict[str, Any]]:
        fleet_node = self._fleet_node(node)
        reply = await self._model_operation(fleet_node.backend.pull(model))
        try:
            if reply.status >= 400:
                raise HerdError(502, _error_text(reply.first, reply.status))
            line = reply.first
            rest = reply.rest() if reply.streaming else None
            while True:
                if line.strip():
                    event = msgspec.json.decode(line)
                    if isinstance(event, dict) and event.get("error"):
                        raise HerdError(502, str(event["error"]))
                    yield event if isinstance(event, dict) else {"status": str(event)}
                if rest is None:
                    break
                try:
                    line = await anext(rest)
                except StopAsyncIteration:
                    break
        finally:
            await reply.aclose()
            await self.fleet.poll(fleet_node)

    async def delete_model(self, node: str, model: str) -> None:
        fleet_node = self._fleet_node(node)
        await self._control(fleet_node, fleet_node.backend.delete(model))

    async def unload_model(self, node: str, model: str) -> None:
        fleet_node = self._fleet_node(node)
        await self._control(fleet_node, fleet_node.backend.unload(model))

    async def unload_everywhere(self, key: str, served_by: str) -> list[str]:
        """Unload the model ``key`` from every other online node that holds it in memory
        (an Ollama unload request, ``ollama stop``, is about the fleet's one endpoint:
        ``served_by`` already unloaded it). Nodes whose kind cannot unload are skipped;
        one that fails is logged, not raised (the asked node's answer stands). Every node
        involved is polled again, so ``/api/ps`` says at once what left memory.

        Returns:
            The nodes it was unloaded from.
        """
        holders = [
            node
            for node in self.fleet.nodes.values()
            if node.name != served_by
            and node.view.status == "online"
            and (key in node.view.loaded or key in node.view.loading)
        ]

        async def unload(node: Any) -> str:
            held = node.view.loaded.get(key)
            name = held.name if held is not None else key
            try:
                await self._control(node, node.backend.unload(name))
            except HerdError as error:
                if error.status != 400:  # (400: this kind of node cannot unload)
                    log.warning("unloading %s from node %s: %s", name, node.name, error)
                return ""
            return node.name

        served = self.fleet.nodes.get(served_by)
        refresh = [self.fleet.poll(served)] if served is not None else []  # (its /api/ps)
        done = await asyncio.gather(*(unload(node) for node in holders), *refresh)
        return [name for name in done[: len(holders)] if name]

    @staticmethod
    async def _model_operation(operation: Awaitable[UpstreamReply]) -> UpstreamReply:
        try:
            return await operation
        except NodeFailure as failure:
            if failure.status == 501:  # the node's kind cannot do it: the asker's mistake
                raise HerdError(400, failure.message) from None
            if failure.not_found:
                raise HerdError(404, failure.message) from None
            raise HerdError(502, failure.message) from None

    async def _control(self, fleet_node: Any, operation: Awaitable[UpstreamReply]) -> None:
        reply = await self._model_operation(operation)
        try:
            if reply.status >= 400:
                raise HerdError(
                    reply.status if reply.status < 500 else 502,
                    _error_text(reply.first, reply.status),
                )
        finally:
            await reply.aclose()
        await self.fleet.poll(fleet_node)

    # -- Router.queue_snapshot: the dashboard's live queue -------------------------------

    def queue_snapshot(self) -> dict[str, Any]:
        board = self.scheduler.board if self.scheduler is not None else None
        if board is None:
            return {"held": 0, "reaped": 0, "max_queue_depth": 0, "requests": []}
        requests: list[dict[str, Any]] = []
        for node, by_model in board.queues.items():
            for model, queue in by_model.items():
                for slot in list(queue.active):
                    if slot.request is not None:
                        requests.append(_queued(slot.request, node, model, "running"))
                for position, (_, request) in enumerate(list(queue.waiters), start=1):
                    requests.append(_queued(request, node, model, "queued", position))
        return {
            "held": board.held,
            "reaped": board.reaped,
            "max_queue_depth": board.max_queue_depth,
            "requests": requests,
        }


def _queued(request: Any, node: str, model: str, state: str, position: int = 0) -> dict[str, Any]:
    return {
        "id": request.request_id,
        "kind": request.kind,
        "endpoint": request.endpoint,
        "api": request.api,
        "model": model,
        "node": node,
        "state": state,
        "position": position,
        "received_at": request.received_at,
        "tags": list(request.tags),
    }


def _error_text(body: bytes, status: int) -> str:
    try:
        answer = msgspec.json.decode(body)
    except msgspec.DecodeError:
        answer = None
    if isinstance(answer, dict) and answer.get("error"):
        return str(answer["error"])
    return f"the node answered HTTP {status}"


def _convert(raw: Any, struct: type, where: str) -> Any:
    try:
        return msgspec.convert(raw or {}, struct, strict=False)
    except msgspec.ValidationError as exc:
        raise PluginLoadError(f"{where}: {exc}") from None
