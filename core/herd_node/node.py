"""The node agent: reads the local Ollama and the machine, and heartbeats to the router.

It never starts, restarts, pulls into or deletes from Ollama: it only reads
``/api/version``, ``/api/tags`` and ``/api/ps``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import herd
import httpx
import msgspec
from herd.net import takes_proxy_from_environment
from herd.protocol.heartbeat import (
    PAYLOAD_VERSION,
    DiskModel,
    Heartbeat,
    HeartbeatReply,
    MachineInfo,
    RunningModel,
    ServiceInfo,
    decode_reply,
    encode,
    models_digest,
)

from herd_node.probes import MachineProbe, find_ollama_environment, models_dir
from herd_node.settings import AgentSettings, stated_ollama_url

if TYPE_CHECKING:
    from herd_services.server import RunningServices

__all__ = ["NodeAgent", "OllamaSnapshot", "read_ollama", "run_agent"]

log = logging.getLogger("herd_node")

HEARTBEAT_PATH = "/fleet/heartbeat"


class OllamaSnapshot(msgspec.Struct, kw_only=True):
    """One reading of the local Ollama."""

    version: str = ""
    models: list[DiskModel] = []
    loaded: list[RunningModel] = []
    error: str = ""


async def read_ollama(client: httpx.AsyncClient, base: str) -> OllamaSnapshot:
    """Read version, models on disk and loaded models; never raises (``error`` says why)."""
    base = base.rstrip("/")
    try:
        # (an Ollama before 0.1.38 has no /api/ps: its models are still read)
        version, tags, ps = await asyncio.gather(
            _get_json(client, base + "/api/version", optional=True),
            _get_json(client, base + "/api/tags"),
            _get_json(client, base + "/api/ps", optional=True),
        )
    except (httpx.HTTPError, ValueError, msgspec.DecodeError) as exc:
        return OllamaSnapshot(error=f"Ollama at {base} is not answering: {_describe(exc)}")
    return OllamaSnapshot(
        version=str(version.get("version") or ""),
        models=[_disk_model(m) for m in _entries(tags)],
        loaded=[_running_model(m) for m in _entries(ps)],
    )


async def _get_json(client: httpx.AsyncClient, url: str, optional: bool = False) -> dict[str, Any]:
    response = await client.get(url)
    if response.status_code == 404 and optional:
        return {}
    if response.status_code != 200:
        raise ValueError(f"{url} answered HTTP {response.status_code}")
    data = msgspec.json.decode(response.content)
    if not isinstance(data, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return data


def _entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    models = data.get("models") or []
    return [m for m in models if isinstance(m, dict) and (m.get("name") or m.get("model"))]


def _disk_model(raw: dict[str, Any]) -> DiskModel:
    details = raw.get("details")
    return DiskModel(
        name=str(raw.get("name") or raw.get("model")),
        size=_int(raw.get("size")),
        digest=str(raw.get("digest") or ""),
        modified_at=str(raw.get("modified_at") or ""),
        details=details if isinstance(details, dict) else {},
        capabilities=[str(c) for c in raw.get("capabilities") or []],
    )


def _running_model(raw: dict[str, Any]) -> RunningModel:
    details = raw.get("details")
    return RunningModel(
        name=str(raw.get("name") or raw.get("model")),
        size=_int(raw.get("size")),
        size_vram=_int(raw.get("size_vram")),
        context_length=_int(raw.get("context_length")),
        expires_at=str(raw.get("expires_at") or ""),
        digest=str(raw.get("digest") or ""),
        details=details if isinstance(details, dict) else {},
    )


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text


class NodeAgent:
    """Heartbeats one node's state to one router until told to stop.

    Args:
        settings: The agent's settings (``router`` must be set by now).
        machine: Reads the machine; a :class:`MachineProbe` by default. Tests pass a stub.

    Example:
        >>> agent = NodeAgent(AgentSettings(router="http://127.0.0.1:11435", name="a"))
        >>> asyncio.run(agent.run(stop_event))  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: AgentSettings,
        machine: Callable[[], MachineInfo] | None = None,
        services: list[ServiceInfo] | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.agent_id = os.urandom(8).hex()
        self.url = stated_ollama_url(settings, settings.router)
        self._machine = machine
        self._ollama_env: dict[str, str] = {}
        self._acked_digest = ""
        self._seq = 0
        self._last_problem = ""
        self.registered_as = ""
        self.beats_sent = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat every ``interval`` until ``stop`` is set, then say the node is draining."""
        settings = self.settings
        if self._machine is None:
            self._ollama_env = await asyncio.to_thread(find_ollama_environment)
            probe = await asyncio.to_thread(MachineProbe, models_dir(self._ollama_env))
            self._machine = probe.read
        log.info(
            "herd-node %s: node %r, Ollama at %s (stated to the router as %s), router %s",
            herd.__version__,
            settings.name,
            settings.ollama,
            self.url,
            settings.router,
        )
        timeout = httpx.Timeout(settings.timeout)
        async with (
            httpx.AsyncClient(  # (the environment's proxy is not for this machine)
                timeout=timeout,
                follow_redirects=False,
                trust_env=takes_proxy_from_environment(settings.ollama),
            ) as ollama,
            httpx.AsyncClient(
                timeout=timeout,
                follow_redirects=False,
                trust_env=takes_proxy_from_environment(settings.router),
            ) as router,
        ):
            loop = asyncio.get_running_loop()
            next_beat = loop.time()
            while not stop.is_set():
                await self.beat(ollama, router)
                next_beat = max(next_beat + settings.interval, loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), next_beat - loop.time())
            told = await self.beat(ollama, router, draining=True)
        if told is not None and told.draining:
            log.info("herd-node stopped; the router knows node %r is draining", told.node)
        elif told is not None:
            # A YAML node's state comes from the router's own polls unless the agent holds
            # the node token: the router heard us but keeps sending the node requests.
            log.info(
                "herd-node stopped; the router still sends node %r requests (it takes a "
                "drain from an agent only with auth.node_token, or drain it: herd drain %s)",
                told.node,
                told.node,
            )
        else:
            log.warning("herd-node stopped; the router could not be told (see above)")

    async def beat(
        self, ollama: httpx.AsyncClient, router: httpx.AsyncClient, draining: bool = False
    ) -> HeartbeatReply | None:
        """Read Ollama and the machine and send one heartbeat; never raises."""
        snapshot = await read_ollama(ollama, self.settings.ollama)
        assert self._machine is not None
        machine = await asyncio.to_thread(self._machine)
        heartbeat = self._heartbeat(snapshot, machine, draining)
        reply = await self._send(router, heartbeat)
        lost = reply is not None and reply.models_digest != heartbeat.models_digest
        if lost and heartbeat.models is None and not snapshot.error:
            # The router lost our models (it restarted): send them at once.
            heartbeat.models = snapshot.models
            reply = await self._send(router, heartbeat)
        return reply

    def _heartbeat(
        self, snapshot: OllamaSnapshot, machine: MachineInfo, draining: bool
    ) -> Heartbeat:
        self._seq += 1
        digest = models_digest(snapshot.models) if not snapshot.error else ""
        send_models = not snapshot.error and digest != self._acked_digest
        return Heartbeat(
            payload_version=PAYLOAD_VERSION,
            name=self.settings.name,
            ollama_url=self.url,
            agent_id=self.agent_id,
            agent_version=herd.__version__,
            interval=self.settings.interval,
            seq=self._seq,
            ollama_version=snapshot.version,
            ollama_error=snapshot.error,
            models=snapshot.models if send_models else None,
            models_digest=digest,
            loaded=snapshot.loaded,
            num_parallel=self.settings.num_parallel or _env_int(self._ollama_env, "NUM_PARALLEL"),
            max_loaded_models=self.settings.max_loaded_models
            or _env_int(self._ollama_env, "MAX_LOADED_MODELS"),
            machine=machine,
            draining=draining,
            services=self.services,
        )

    async def _send(self, router: httpx.AsyncClient, heartbeat: Heartbeat) -> HeartbeatReply | None:
        headers = {"Content-Type": "application/json"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        url = self.settings.router.rstrip("/") + HEARTBEAT_PATH
        try:
            response = await router.post(url, content=encode(heartbeat), headers=headers)
        except httpx.HTTPError as exc:
            self._problem(f"router {self.settings.router} unreachable: {_describe(exc)}")
            return None
        if response.status_code != 200:
            self._problem(
                f"router refused the heartbeat (HTTP {response.status_code}): "
                f"{_error_text(response)}"
            )
            return None
        try:
            reply = decode_reply(response.content)
        except msgspec.DecodeError as exc:
            self._problem(f"router sent an unreadable reply: {exc}")
            return None
        self.beats_sent += 1
        self._acked_digest = reply.models_digest
        if self._last_problem or not self.registered_as:
            log.info("router %s accepted node %r", self.settings.router, reply.node)
            self._last_problem = ""
        self.registered_as = reply.node
        return reply

    def _problem(self, message: str) -> None:
        if message != self._last_problem:
            log.warning("%s", message)
            self._last_problem = message


def _env_int(environ: dict[str, str], key: str) -> int:
    for source in (environ, os.environ):
        value = source.get("OLLAMA_" + key, "")
        if value.strip().isdigit():
            return int(value)
    return 0


def _error_text(response: httpx.Response) -> str:
    try:
        data = msgspec.json.decode(response.content)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"]
    except msgspec.DecodeError:
        pass
    return response.text[:200]


async def run_agent(settings: AgentSettings) -> int:
    """``herd-node``'s main coroutine: find the router if needed, heartbeat until a signal.

    SIGTERM and SIGINT stop it gracefully: one last heartbeat tells the router the node
    is draining (no new requests; the in-flight ones finish on Ollama).

    Returns:
        The process exit code.
    """
    if not settings.router:
        router = await _discover_router(settings.timeout)
        if not router:
            return 2
        settings = msgspec.structs.replace(settings, router=router)
    services = None
    if settings.services:  # speech-to-text, embeddings, images beside Ollama
        from herd_services.server import ServicesConfigError, start_from_file

        try:
            services = await start_from_file(settings.services)
        except ServicesConfigError as exc:
            log.error("herd-node: --services %s: %s", settings.services, exc)
            return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    agent = NodeAgent(settings)
    if services is not None:
        agent.services = _advertised(services, agent.url)
    try:
        await agent.run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        if services is not None:
            await services.runner.cleanup()
    return 0


def _advertised(services: RunningServices, ollama_url: str) -> list[ServiceInfo] | None:
    """What the heartbeat says of the node's services: reached on the Ollama URL's host."""
    if services.api_key:
        log.warning(
            "herd-node: the node services need an api_key, which heartbeats never carry: "
            "list them under the router's nodes[].services with options.api_key instead"
        )
        return None
    parts = urlsplit(ollama_url)
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    url = f"{parts.scheme or 'http'}://{host}:{services.port}"
    return [
        ServiceInfo(
            url=url,
            type="openai-compat",
            models=services.models,
            capabilities=services.capabilities,
        )
    ]


#: Entry-point group of router finders: ``name = "module:function"``, each a function
#: ``(timeout_s) -> router URL or ""``. herd's mDNS extra registers one; the agent never
#: imports an extra by name.
DISCOVERY_GROUP = "herd.node_discovery"


def _router_finder() -> Any:
    for entry in metadata.entry_points(group=DISCOVERY_GROUP):
        try:
            return entry.load()
        except ImportError:  # the extra's own dependency (zeroconf) is not installed
            continue
    return None


async def _discover_router(timeout: float) -> str:
    find_router = _router_finder()
    if find_router is None:
        log.error(
            "herd-node: no router given. Pass --router http://ROUTER:11435 (or set "
            "HERD_NODE_ROUTER), or install the mDNS extra (pip install 'herd-gateway[mdns]') "
            "to find a router that advertises itself."
        )
        return ""
    found = await asyncio.to_thread(find_router, max(timeout, 3.0))
    if not found:
        log.error(
            "herd-node: no router answered on mDNS (_herd._tcp). Is `plugins.load: "
            "[herd_contrib.mdns]` in the router's YAML, and is it on this network? "
            "Or pass --router."
        )
        return ""
    log.info("found router %s by mDNS", found)
    return found
