"""Build the engines a configuration names, and serve them (in the foreground or a thread)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from herd_services.app import create_services_app
from herd_services.config import ServicesConfig, ServicesConfigError
from herd_services.jobs import Engine

__all__ = [
    "RunningServices",
    "ServicesConfigError",
    "ServicesHandle",
    "build_engines",
    "serve",
    "start_from_file",
    "start_services",
]

log = logging.getLogger("herd_services")


def build_engines(config: ServicesConfig) -> list[Engine]:
    """One engine per configured model. Image models whose weights are missing are
    skipped with a warning (they run only where the weights exist).

    Raises:
        ServicesConfigError: a transcription or embedding model cannot be found, or its
            extra is not installed.
    """
    engines: list[Engine] = []
    jobs = config.jobs_per_model
    if config.transcription:
        _require("faster_whisper", "stt")
        from herd_services.stt import WhisperEngine

        engines += [WhisperEngine(model, jobs) for model in config.transcription]
    if config.embeddings:
        _require("sentence_transformers", "embed")
        from herd_services.embed import SentenceEngine

        engines += [SentenceEngine(model, jobs) for model in config.embeddings]
    if config.images:
        from herd_services.image import DiffusersEngine, weights_present

        for model in config.images:
            if not weights_present(model.path):
                log.warning(
                    "image model %s: no weights at %s; not serving it", model.name, model.path
                )
                continue
            _require("diffusers", "image")
            engines.append(DiffusersEngine(model, jobs))
    return engines


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ServicesConfigError(
            f"{module} is not installed: pip install 'herd-gateway[{extra}]'"
        ) from None


async def start_services(
    engines: Sequence[Engine], config: ServicesConfig
) -> tuple[web.AppRunner, int]:
    """Serve ``engines`` on ``config.host:config.port`` (0: a free port)."""
    app = create_services_app(
        engines, max_audio_bytes=config.max_audio_bytes, api_key=config.api_key
    )
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    return runner, runner.addresses[0][1]


@dataclass(slots=True)
class RunningServices:
    """Services started beside Ollama by ``herd-node --services``: what to advertise."""

    runner: web.AppRunner
    port: int
    models: list[str]
    capabilities: list[str]
    api_key: str


async def start_from_file(path: str) -> RunningServices:
    """Start the services a ``herd-node-services`` YAML file names (``herd-node --services``).

    Raises:
        ServicesConfigError: the file or a model in it is wrong.
    """
    from herd_services.config_file import load_services_config

    config, _ = load_services_config(["--config", path])
    engines = build_engines(config)
    runner, port = await start_services(engines, config)
    names = ", ".join(f"{e.name} ({e.capability})" for e in engines) or "no models"
    log.info("node services on http://%s:%d serving %s", config.host, port, names)
    return RunningServices(
        runner=runner,
        port=port,
        models=[e.name for e in engines],
        capabilities=sorted({e.capability for e in engines}),
        api_key=config.api_key,
    )


def serve(config: ServicesConfig) -> None:
    """Run the service app until interrupted."""
    engines = build_engines(config)

    async def main() -> None:
        runner, port = await start_services(engines, config)
        names = ", ".join(f"{e.name} ({e.capability})" for e in engines) or "no models"
        log.info("herd-node-services on http://%s:%d serving %s", config.host, port, names)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


class ServicesHandle:
    """The service app on 127.0.0.1 in a thread of its own (tests, benchmarks).

    Example:
        >>> with ServicesHandle([engine]) as services:  # doctest: +SKIP
        ...     httpx.get(services.url + "/v1/models")
    """

    def __init__(self, engines: Sequence[Engine], config: ServicesConfig | None = None) -> None:
        self.engines = list(engines)
        self.config = config or ServicesConfig(port=0)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServicesHandle:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                runner, self.port = await start_services(self.engines, self.config)
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(main())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="herd-node-services", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._thread = None

    def __enter__(self) -> ServicesHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
