"""Run a herd router in a background thread on a free 127.0.0.1 port (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from herd._engine.config import load_settings
from herd.settings import Settings

__all__ = ["RouterHandle"]


class RouterHandle:
    """A router serving on 127.0.0.1 in its own thread and event loop.

    Example:
        >>> with RouterHandle(nodes=[{"name": "a", "url": sim.url}]) as router:
        ...     httpx.get(router.url + "/api/tags")
    """

    def __init__(self, settings: Settings | None = None, **config: Any) -> None:
        if settings is None:
            config.setdefault("data_dir", "")
            config.setdefault("fleet", {}).setdefault("discover_local", False)
            settings = load_settings(None, env={}, overrides=config)
        self.settings = settings
        self.app: Any = None
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def start(self, timeout: float = 30.0) -> RouterHandle:
        import uvicorn

        from herd._engine.app import create_app
        from herd._engine.server import server_config

        self.app = create_app(self.settings)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = server_config(
            self.app,
            self.settings,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._server.serve(sockets=[sock]))
            except BaseException as exc:  # surfaced by start()
                self._error = exc
            finally:
                sock.close()
                loop.close()

        self._thread = threading.Thread(target=run, name=f"herd-router-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"router failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("router did not start in time")
            time.sleep(0.01)
        return self

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the router's event loop (e.g. to force a poll)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def poll_now(self) -> None:
        """Poll every node once, now."""
        fleet = self.gateway.fleet

        async def poll_all() -> None:
            await asyncio.gather(*(fleet.poll(n) for n in fleet.nodes.values()))

        self.call(poll_all())

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._thread = None

    def __enter__(self) -> RouterHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
