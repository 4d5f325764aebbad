"""Run a node agent in a background thread (tests, benchmarks, demos on one machine)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from herd.protocol.heartbeat import MachineInfo

from herd_node.node import NodeAgent
from herd_node.settings import AgentSettings

__all__ = ["AgentHandle"]


class AgentHandle:
    """One :class:`~herd_node.node.NodeAgent` on its own thread and event loop.

    Args:
        machine: Stub machine readings (a :class:`MachineInfo` or a function returning
            one); the real machine is read when None.
        **settings: :class:`AgentSettings` keys (``router``, ``ollama``, ``name``, ...).

    Example:
        >>> with AgentHandle(router=router.url, ollama=sim.url, name="a", interval=0.2):
        ...     ...  # doctest: +SKIP
    """

    def __init__(
        self, machine: MachineInfo | Callable[[], MachineInfo] | None = None, **settings: Any
    ) -> None:
        self.settings = AgentSettings(**settings)
        if isinstance(machine, MachineInfo):
            reading = machine
            machine = lambda: reading  # noqa: E731 - a stub reading
        self.agent = NodeAgent(self.settings, machine=machine)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> AgentHandle:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._stop = asyncio.Event()
            self._task = loop.create_task(self.agent.run(self._stop))
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
            loop.close()

        self._thread = threading.Thread(target=run, name="herd-node-agent", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop as SIGTERM does: a last heartbeat says the node is draining."""
        if self._loop is not None and self._stop is not None and self.running:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._join(timeout)

    def kill(self, timeout: float = 15.0) -> None:
        """Stop without a word to the router, as a crash or a pulled cable would."""
        if self._loop is not None and self._task is not None and self.running:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> AgentHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
