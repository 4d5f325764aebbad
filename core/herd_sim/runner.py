"""``SimNode``: one emulated Ollama server on a background thread, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from herd_sim.catalog import Catalog
from herd_sim.control import DEFAULT_FAILURE, DieSpec, FailSpec, HangSpec
from herd_sim.engine import SimEngine
from herd_sim.models import SimConfig

ResultT = TypeVar("ResultT")
START_TIMEOUT_SECONDS = 10.0


class SimNode:
    """An emulated Ollama on ``127.0.0.1`` with its own event loop thread.

    ``port=0`` picks a free port at the first start; later starts reuse it, so a test can
    stop a node (connections refused, streams cut) and start it again at the same URL. The
    disk (pulled, copied, deleted models) survives a restart; loaded models and counters do
    not, as with a real restart.

    Args:
        config: What to emulate; ``SimConfig()`` (the default models) when omitted.
        host: Listen address; loopback unless you mean otherwise.
        port: Listen port; 0 for a free one. ``config.port`` is not used.

    Example:
        >>> with SimNode(SimConfig(gen_tps=200)) as node:  # doctest: +SKIP
        ...     httpx.get(f"{node.url}/api/tags").json()["models"][0]["name"]
        'llama3.2:3b'
    """

    def __init__(
        self, config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SimConfig()
        self.host = host
        self._port = port
        self._catalog: Catalog | None = None
        self._engine: SimEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def name(self) -> str:
        """``config.name``."""
        return self.config.name

    @property
    def port(self) -> int:
        """The bound port (known after the first :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash)."""
        return f"http://{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def engine(self) -> SimEngine:
        """The live state; read it from tests, change it only through :meth:`call`."""
        if self._engine is None:
            raise RuntimeError("SimNode is not running")
        return self._engine

    def start(self) -> SimNode:
        """Bind and serve; returns ``self``. Raises ``OSError`` if the port is taken."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._bind())
            except BaseException as error:
                failure.append(error)
                ready.set()
                _finish_tasks(loop)
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._unbind())
            _finish_tasks(loop)

        thread = threading.Thread(target=serve, name=f"herd-sim-{self.config.name}", daemon=True)
        self._loop = loop
        thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError("herd-sim did not start in time")
        if failure:
            self._loop = None
            thread.join()
            raise failure[0]
        self._thread = thread
        return self

    def stop(self) -> None:
        """Close the server: open connections are cut, loaded models forgotten."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=START_TIMEOUT_SECONDS)
        self._thread = self._loop = None

    def restart(self) -> SimNode:
        """Stop and start again on the same port."""
        self.stop()
        return self.start()

    def call(self, function: Callable[[SimEngine], ResultT]) -> ResultT:
        """Run ``function(engine)`` on the node's loop and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("SimNode is not running")

        async def invoke() -> ResultT:
            return function(self.engine)

        return asyncio.run_coroutine_threadsafe(invoke(), loop).result(START_TIMEOUT_SECONDS)

    def fail(self, count: int = 1, status: int = 500, error: str | None = None) -> None:
        """Arm ``/_sim/fail``: the next ``count`` inference requests answer ``status``."""
        spec = FailSpec(count=count, status=status, error=error or DEFAULT_FAILURE)
        self.call(lambda engine: engine.faults.arm_fail(spec))

    def hang(self, count: int = 1, seconds: float = 30.0) -> None:
        """Arm ``/_sim/hang``: the next ``count`` inference requests wait ``seconds`` first."""
        self.call(lambda engine: engine.faults.arm_hang(HangSpec(count=count, seconds=seconds)))

    def die(self, count: int = 1, after_chunks: int = 0, error: str | None = None) -> None:
        """Arm ``/_sim/die``: the next ``count`` generations break after ``after_chunks``."""
        spec = DieSpec(count=count, after_chunks=after_chunks, error=error)
        self.call(lambda engine: engine.faults.arm_die(spec))

    def silent(self, seconds: float = 3600.0) -> None:
        """``/_sim/silent``: stall every request ``seconds``; 0 ends the silence."""
        self.call(lambda engine: engine.faults.set_silence(seconds))

    def reset(self, models: bool = False) -> None:
        """``/_sim/reset``: disarm, zero counters; ``models`` also restores models."""
        self.call(lambda engine: engine.reset(models=models))

    def stats(self) -> dict[str, Any]:
        """``/_sim/stats`` without HTTP."""
        return self.call(lambda engine: engine.snapshot())

    async def _bind(self) -> None:
        from herd_sim.app import start_sim_server

        engine = SimEngine(self.config, self._catalog)
        self._runner, self._port = await start_sim_server(engine, self.host, self._port)
        self._engine, self._catalog = engine, engine.catalog

    async def _unbind(self) -> None:
        if self._engine is not None:
            self._catalog = self._engine.catalog
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._engine = None

    def __enter__(self) -> SimNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"SimNode({self.config.name!r}, {self.url}, {state})"


def _finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on ``loop`` (cut streams, timers) and close it cleanly."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
