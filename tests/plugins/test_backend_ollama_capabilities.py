"""The Ollama backend asks /api/show what a model can do when /api/tags does not say."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from herd.interfaces import BackendContext
from herd.settings import NodeConfig
from herd_plugins.backend_ollama import OllamaBackend

TAGS = {
    "models": [
        {"name": "x/z-image-turbo:latest", "digest": "d1", "size": 12},
        {"name": "gemma3:1b", "digest": "d2", "size": 1},
        {"name": "broken:1b", "digest": "d3", "size": 1},
    ]
}
SHOWN = {"x/z-image-turbo:latest": ["image"], "gemma3:1b": ["completion"]}


async def _poll_twice() -> tuple[list, list, list[str]]:
    asked: list[str] = []

    async def show(request: web.Request) -> web.Response:
        name = (await request.json())["model"]
        asked.append(name)
        if name not in SHOWN:
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"capabilities": SHOWN[name]})

    def reply(data):
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(data)

        return handler

    app = web.Application()
    app.router.add_get("/api/version", reply({"version": "0.12.0"}))
    app.router.add_get("/api/tags", reply(TAGS))
    app.router.add_get("/api/ps", reply({"models": []}))
    app.router.add_post("/api/show", show)
    async with _backend_before(app) as backend:
        first = (await backend.poll()).models
        second = (await backend.poll()).models
    return first, second, asked


@contextlib.asynccontextmanager
async def _backend_before(app: web.Application) -> AsyncIterator[OllamaBackend]:
    """An Ollama backend in front of ``app``, served on a free 127.0.0.1 port."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as http:
            node = NodeConfig(name="n", url=f"http://127.0.0.1:{port}")
            yield OllamaBackend(node, OllamaBackend.Config(), BackendContext(http=http))
    finally:
        await runner.cleanup()


def test_capabilities_come_from_api_show_once_per_model() -> None:
    first, second, asked = asyncio.run(_poll_twice())
    by_name = {m.name: m.capabilities for m in first}
    assert by_name == {
        "x/z-image-turbo:latest": ["image"],
        "gemma3:1b": ["completion"],
        "broken:1b": [],
    }
    assert {m.name: m.capabilities for m in second} == by_name
    # known digests are not asked again; a failed look-up is retried on the next poll
    assert sorted(asked) == ["broken:1b", "broken:1b", "gemma3:1b", "x/z-image-turbo:latest"]


def test_a_node_without_api_ps_or_api_version_is_polled_from_its_tags() -> None:
    """An Ollama before 0.1.38 has no /api/ps; a compatible server may have no /api/version."""

    async def scenario() -> tuple[str, list[str], list[str]]:
        async def tags(request: web.Request) -> web.Response:
            model = {"name": "llama3.2:3b", "digest": "d", "size": 2, "capabilities": ["tools"]}
            return web.json_response({"models": [model]})

        app = web.Application()
        app.router.add_get("/api/tags", tags)  # (and nothing else: every other path is 404)
        async with _backend_before(app) as backend:
            report = await backend.poll()
        return report.version, [m.name for m in report.models], [m.name for m in report.loaded]

    version, models, loaded = asyncio.run(scenario())
    assert (version, models, loaded) == ("", ["llama3.2:3b"], [])
