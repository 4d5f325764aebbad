"""The emulator's aiohttp application: routes, Ollama's error habits, and server start-up."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web

from herd_sim.admin import add_admin_routes
from herd_sim.catalog import blob_layers, model_details, show_response, tags_entry
from herd_sim.embed import embed, embeddings
from herd_sim.engine import ENGINE, SimEngine
from herd_sim.generation import open_stream
from herd_sim.images import add_image_routes, openai_error
from herd_sim.inference import chat, generate
from herd_sim.models import EmulatedModel
from herd_sim.names import ModelName
from herd_sim.openai_api import add_openai_routes
from herd_sim.transcribe import add_transcription_routes
from herd_sim.wire import (
    CopyRequest,
    ModelRequest,
    SimError,
    decode_body,
    encode_line,
    error_response,
    json_response,
    rfc3339,
)

PULL_STEPS = 4
UNKNOWN_MANIFEST = "pull model manifest: file does not exist"
MAX_BODY_BYTES = 64 * 1024 * 1024


@web.middleware
async def ollama_habits(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count requests, stall while silent, and answer errors the way Ollama does."""
    engine = request.app[ENGINE]
    if not request.path.startswith("/_sim/"):
        resource = request.match_info.route.resource
        engine.stats.count_request(resource.canonical if resource else "unmatched")
        await engine.faults.wait_if_silent()
    try:
        return await handler(request)
    except SimError as error:
        if engine.config.api == "openai":
            return openai_error(error.status, error.message)
        return error_response(error.status, error.message)
    except web.HTTPMethodNotAllowed:
        return web.Response(status=405, text="405 method not allowed")
    except web.HTTPNotFound:
        return web.Response(status=404, text="404 page not found")


async def root(request: web.Request) -> web.Response:
    """Liveness probe."""
    return web.Response(text="Ollama is running")


async def version(request: web.Request) -> web.Response:
    return json_response({"version": request.app[ENGINE].config.version})


async def tags(request: web.Request) -> web.Response:
    """Models on disk, newest first."""
    catalog = request.app[ENGINE].catalog
    return json_response({"models": [tags_entry(entry) for entry in catalog.listing()]})


async def ps(request: web.Request) -> web.Response:
    """Loaded models, latest expiry first."""
    now = datetime.now().astimezone()
    models = []
    for runner in request.app[ENGINE].scheduler.runners():
        expires = datetime.fromtimestamp(runner.expires_at_wall(now.timestamp())).astimezone()
        models.append(
            {
                "name": runner.disk.display,
                "model": runner.disk.display,
                "size": runner.size,
                "digest": runner.disk.model.digest,
                "details": model_details(runner.disk.model),
                "expires_at": rfc3339(expires),
                "size_vram": runner.size_vram,
                "context_length": runner.num_ctx,
            }
        )
    return json_response({"models": models})


async def show(request: web.Request) -> web.Response:
    """Model metadata."""
    body = decode_body(await request.read(), ModelRequest)
    name = body.model_name
    if not name:
        raise SimError(400, "model is required")
    missing = f"model '{ModelName.parse(name).display}' not found"
    return json_response(show_response(request.app[ENGINE].find_model(name, missing)))


async def delete(request: web.Request) -> web.Response:
    """Remove a model from disk (and unload it): 200 with an empty body."""
    engine = request.app[ENGINE]
    name = decode_body(await request.read(), ModelRequest).model_name
    if not name:
        raise SimError(400, "model is required")
    if not ModelName.parse(name).is_valid:
        raise SimError(400, "invalid model name")
    removed = engine.catalog.delete(name)
    if removed is None:
        raise SimError(404, f"model '{name}' not found")
    engine.scheduler.request_unload(removed)
    return web.Response(status=200)


async def copy(request: web.Request) -> web.Response:
    """Copy a model to a new name: 200 with an empty body."""
    engine = request.app[ENGINE]
    body = decode_body(await request.read(), CopyRequest)
    source, destination = body.source or "", body.destination or ""
    if not ModelName.parse(source).is_valid:
        raise SimError(400, f'source "{source}" is invalid')
    if not ModelName.parse(destination).is_valid:
        raise SimError(400, f'destination "{destination}" is invalid')
    entry = engine.find_model(source, f'model "{source}" not found')
    engine.catalog.copy(entry, destination)
    return web.Response(status=200)


async def pull(request: web.Request) -> web.StreamResponse:
    """Download a model from the configured registry (or re-check one already on disk)."""
    engine = request.app[ENGINE]
    body = decode_body(await request.read(), ModelRequest)
    name = body.model_name
    if not name:
        raise SimError(400, "model is required")
    if not ModelName.parse(name).is_valid:
        raise SimError(400, "invalid model name")
    on_disk = engine.catalog.find(name)
    model = on_disk.model if on_disk else engine.catalog.registry_model(name)
    if body.stream is False:
        if model is None:
            raise SimError(500, UNKNOWN_MANIFEST)
        async for _ in _pull_progress(engine, model, already_present=on_disk is not None):
            pass
        return json_response({"status": "success"})
    response = await open_stream(request)
    await response.write(encode_line({"status": "pulling manifest"}))
    if model is None:
        await response.write(encode_line({"error": UNKNOWN_MANIFEST}))
    else:
        async for line in _pull_progress(engine, model, already_present=on_disk is not None):
            await response.write(encode_line(line))
    await response.write_eof()
    return response


async def _pull_progress(engine: SimEngine, model: EmulatedModel, already_present: bool) -> Any:
    """Progress lines after ``pulling manifest``; puts the model on disk at the end."""
    for layer in blob_layers(model):
        line: dict[str, Any] = {
            "status": f"pulling {layer.digest[:12]}",
            "digest": f"sha256:{layer.digest}",
            "total": layer.size,
        }
        if already_present:
            yield {**line, "completed": layer.size}
            continue
        yield line
        step_seconds = engine.config.pull_seconds_per_gb * layer.size / 1e9 / PULL_STEPS
        for step in range(1, PULL_STEPS + 1):
            await asyncio.sleep(step_seconds)
            yield {**line, "completed": layer.size * step // PULL_STEPS}
    yield {"status": "verifying sha256 digest"}
    yield {"status": "writing manifest"}
    if not already_present:
        engine.catalog.add(model)
    yield {"status": "success"}


def create_sim_app(engine: SimEngine) -> web.Application:
    """The aiohttp application serving ``engine``."""
    app = web.Application(middlewares=[ollama_habits], client_max_size=MAX_BODY_BYTES)
    app[ENGINE] = engine
    if engine.config.api == "openai":  # an OpenAI-compatible server: no Ollama API at all
        add_openai_routes(app)
    else:
        _add_ollama_routes(app)
    add_admin_routes(app)

    async def close_engine(app: web.Application) -> None:
        app[ENGINE].close()

    app.on_cleanup.append(close_engine)
    return app


def _add_ollama_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", ps)
    app.router.add_post("/api/show", show)
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/generate", generate)
    app.router.add_post("/api/embed", embed)
    app.router.add_post("/api/embeddings", embeddings)
    app.router.add_post("/api/pull", pull)
    app.router.add_delete("/api/delete", delete)
    app.router.add_post("/api/copy", copy)
    add_image_routes(app)  # OpenAI-style /v1 workloads, for models with those capabilities
    add_transcription_routes(app)


async def start_sim_server(engine: SimEngine, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``engine`` on ``host:port`` (0 = a free port); the runner and the bound port.

    Handlers are cancelled when their client disconnects, which is how a generation stops
    at once and frees its slot.
    """
    runner = web.AppRunner(
        create_sim_app(engine), handler_cancellation=True, shutdown_timeout=0.5, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    return runner, bound_port
